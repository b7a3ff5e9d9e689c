"""Time. Everything that needs "now" takes a ``Clock`` so tests can move time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 with an explicit offset, microsecond precision; UTC is written ``Z``
    (five bytes shorter in every record than ``+00:00``)."""
    text = value.isoformat(timespec="microseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_time(value: object) -> datetime | None:
    """Parse the RFC 3339 forms the Go, Python and TypeScript producers write.

    Accepts ``Z`` or a numeric offset and up to nanosecond fractions (truncated to
    microseconds). A naive time is taken as UTC. Empty or missing gives ``None``.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 time string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
