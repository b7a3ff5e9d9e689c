"""A running job's progress, as a handler reports it (``job.set_progress``).

Stored apart from the job record, in ``bananas:progress:<id>`` (a hash with
``fraction``, ``message``, ``at``), so a progress report never races the worker's own
writes of the record. The worker throttles the writes (docs/WORKFLOWS.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bananas.core.clock import parse_time
from bananas.errors import ValidationError

#: Longest progress message kept (longer ones are cut).
MAX_MESSAGE_LENGTH = 1024

#: What the worker gives a job to send its progress through: (fraction, message).
ProgressSink = Callable[[float, "str | None"], None]


class Progress(float):
    """The fraction done (0 to 1), which it equals and compares as, with the handler's
    ``message`` and the time ``at`` which it was reported."""

    message: str | None
    at: datetime | None

    def __new__(cls, fraction: float, message: str | None = None, at: datetime | None = None) -> Progress:
        value = super().__new__(cls, fraction)
        value.message = message
        value.at = at
        return value

    @property
    def fraction(self) -> float:
        return float(self)

    def __repr__(self) -> str:
        return f"Progress({float(self)!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Progress, (float(self), self.message, self.at))

    @classmethod
    def from_hash(cls, data: Mapping[bytes | str, bytes | str]) -> Progress | None:
        fields = {_text(k): _text(v) for k, v in data.items()}
        try:
            fraction = float(fields["fraction"])
        except (KeyError, ValueError):
            return None
        return cls(fraction, fields.get("message") or None, parse_time(fields.get("at")))


def check_progress(fraction: object, message: object) -> tuple[float, str | None]:
    """Validate a report: a number from 0 to 1 and an optional text."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not math.isfinite(fraction):
        raise ValidationError(f"progress must be a number from 0 to 1, got {fraction!r}")
    if not 0 <= fraction <= 1:
        raise ValidationError(f"progress must be a number from 0 to 1, got {fraction!r}")
    if message is not None and not isinstance(message, str):
        raise ValidationError(f"progress message must be a string, got {type(message).__name__}")
    return float(fraction), (message[:MAX_MESSAGE_LENGTH] if message else None)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
