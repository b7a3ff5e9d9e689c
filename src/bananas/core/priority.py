"""Job priorities. Three levels, consumed strictly high before normal before low."""

from __future__ import annotations

from enum import StrEnum

from bananas.errors import InvalidPriorityError


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object) -> Priority:
        """Accept a ``Priority`` or its string value (case-insensitive); raise otherwise."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            try:
                return _BY_NAME[value.strip().lower()]
            except KeyError:
                pass
        raise InvalidPriorityError(value)


_BY_NAME = {p.value: p for p in Priority}

#: The order a worker consumes priorities in when none is configured.
DEFAULT_PRIORITIES: tuple[Priority, ...] = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
