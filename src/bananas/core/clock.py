"""Time. Everything that needs "now" takes a ``Clock`` so tests can move time.

The fleet runs on one time, the Redis server's: a ``ServerClock`` is this host's clock
plus an offset measured against the server's ``TIME`` (round-trip corrected) and
measured again every ``refresh_interval`` seconds, so hosts whose clocks disagree by
minutes still agree on lease deadlines, due times and rate limits. Measuring is I/O and
lives in ``bananas.redis.clock_sync``; this module only keeps the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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

#: Seconds between two measurements of a ``ServerClock``'s offset.
CLOCK_REFRESH_INTERVAL = 30.0


class ServerClock:
    """The server's time as seen from this host: ``host.now() + offset``.

    Until the first measurement the offset is 0 (the host's own time). ``host`` is
    injectable: tests give it a skewed clock to stand for a host whose clock is wrong.
    """

    def __init__(self, host: Clock = SYSTEM_CLOCK, *, refresh_interval: float = CLOCK_REFRESH_INTERVAL) -> None:
        self.host = host
        self.refresh_interval = refresh_interval
        #: Seconds to add to the host's time to get the server's.
        self.offset = 0.0
        #: Round trip of the measurement the offset comes from, seconds (its error is at
        #: most half of it).
        self.round_trip: float | None = None
        #: Host time of the last measurement (or failed attempt); None: never measured.
        self.measured_at: float | None = None

    def now(self) -> float:
        return self.host.now() + self.offset

    def needs_measuring(self) -> bool:
        return self.measured_at is None or self.host.now() - self.measured_at >= self.refresh_interval

    def record(self, samples: Sequence[tuple[float, float, float]]) -> None:
        """Keep the offset of the sample with the shortest round trip. Each sample is
        (host time sent, server time, host time received): the server read its clock
        somewhere in between, taken as the middle."""
        sent, server, received = min(samples, key=lambda sample: sample[2] - sample[0])
        self.offset = server - (sent + received) / 2
        self.round_trip = received - sent
        self.measured_at = received

    def failed(self) -> None:
        """A measurement failed: keep the last offset, try again after the interval."""
        self.measured_at = self.host.now()


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
