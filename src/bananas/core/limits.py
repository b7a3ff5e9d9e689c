"""Fleet-wide limits (``bananas limits``): what they are and how they are written down.

Stored in the hash ``bananas:limits`` so every worker obeys them at once; enforced in
the dequeue script, so a limited job stays in its queue instead of being taken and put
back. Field names: ``route:{key}:concurrency``, ``route:{key}:rate``, ``job:{name}:rate``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bananas.errors import ValidationError

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]*)\s*")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` jobs per ``period`` seconds, spread evenly (GCRA) with a small burst."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``100/m``, ``10/s``, ``5/h``, ``30/10s`` (thirty per ten seconds)."""
        match = _RATE.fullmatch(text.lower())
        if not match:
            raise ValidationError(f"invalid rate {text!r}: expected COUNT/UNIT such as '100/m', '10/s' or '30/10s'")
        count, amount, unit = match.groups()
        if unit not in _UNITS and unit != "":
            raise ValidationError(f"invalid rate {text!r}: unknown unit {unit!r} (use s, m or h)")
        seconds = (float(amount) if amount else 1.0) * _UNITS.get(unit or "s", 1.0)
        if int(count) < 1 or not math.isfinite(seconds) or seconds <= 0:
            raise ValidationError(f"invalid rate {text!r}: count and period must be positive")
        return cls(int(count), seconds)

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s"

    @property
    def interval_ms(self) -> float:
        return self.period * 1000.0 / self.count

    @property
    def tolerance_ms(self) -> float:
        """Slack that lets a worker that arrives a little late catch up, so the rate held
        over time is the configured one; it allows a burst of at most ``burst`` jobs."""
        return self.interval_ms * (self.burst - 1)

    @property
    def burst(self) -> int:
        return max(2, math.ceil(self.count / self.period * 0.05))

    def to_field(self) -> str:
        return f"{self.count}/{self.period!r}"

    @classmethod
    def from_field(cls, value: str) -> Rate:
        count, _, period = value.partition("/")
        return cls(int(count), float(period))


@dataclass(frozen=True, slots=True)
class FleetLimits:
    route_concurrency: Mapping[str, int] = field(default_factory=dict)
    route_rate: Mapping[str, Rate] = field(default_factory=dict)
    job_rate: Mapping[str, Rate] = field(default_factory=dict)

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> FleetLimits:
        concurrency: dict[str, int] = {}
        route_rate: dict[str, Rate] = {}
        job_rate: dict[str, Rate] = {}
        for name, value in data.items():
            try:
                kind, _, rest = name.partition(":")
                target, _, what = rest.rpartition(":")
                if kind == "route" and what == "concurrency":
                    concurrency[target] = int(value)
                elif kind == "route" and what == "rate":
                    route_rate[target] = Rate.from_field(value)
                elif kind == "job" and what == "rate":
                    job_rate[target] = Rate.from_field(value)
            except ValueError:
                continue  # a field written by a newer version; ignore rather than stop
        return cls(concurrency, route_rate, job_rate)


def route_concurrency_field(routing_key: str) -> str:
    return f"route:{routing_key}:concurrency"


def route_rate_field(routing_key: str) -> str:
    return f"route:{routing_key}:rate"


def job_rate_field(job_name: str) -> str:
    return f"job:{job_name}:rate"
