"""Which lists a worker takes from, in which order, under which limits. Pure.

The dequeue script gets the result as flat arguments (see dequeue.lua's header):
the lists in order, each list's group (its routing key) and gate (a rate-limited job
name), each group's limits, and for weighted selection one preferred group per slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bananas.core.limits import FleetLimits
from bananas.core.priority import Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY, QueueRef


@dataclass(frozen=True, slots=True)
class Source:
    """One list: a routing key's ready list of a priority, or the parked list of one job
    name within it (``job_name`` set), or the legacy list (``ref.legacy``)."""

    ref: QueueRef
    job_name: str | None = None


def base_order(
    routing_keys: Sequence[str], priorities: Sequence[Priority], selection: str, *, legacy: bool = True
) -> list[QueueRef]:
    """``strict``/``weighted``: key by key; ``priority-first``: priority by priority."""
    pairs: Iterable[tuple[str, Priority]]
    if selection == "priority-first":
        pairs = ((k, p) for p in priorities for k in routing_keys)
    else:
        pairs = ((k, p) for k in routing_keys for p in priorities)
    order: list[QueueRef] = []
    for key, priority in pairs:
        order.append(QueueRef(key, priority))
        if legacy and key == DEFAULT_ROUTING_KEY:
            order.append(QueueRef(key, priority, legacy=True))
    return order


def with_parked(order: Sequence[QueueRef], parked: Mapping[tuple[str, Priority], Sequence[str]]) -> list[Source]:
    """Parked lists come just before their main list: their jobs were ahead in line."""
    sources: list[Source] = []
    for ref in order:
        if not ref.legacy:
            for name in parked.get((ref.routing_key, ref.priority), ()):
                sources.append(Source(ref, name))
        sources.append(Source(ref))
    return sources


def boost(sources: Sequence[Source], overdue: set[QueueRef]) -> list[Source]:
    """Starvation guard: lists whose oldest job waited too long go first, in order."""
    if not overdue:
        return list(sources)
    first = [s for s in sources if s.ref in overdue]
    return first + [s for s in sources if s.ref not in overdue]


@dataclass(frozen=True, slots=True)
class DequeuePlan:
    sources: list[Source]
    groups: list[str]  # routing key of each group, 1-based in the script
    group_of: list[int]  # per source
    gates: list[str]  # rate-limited job name of each gate
    gate_of: list[int]  # per source, 0 = none
    group_last: list[int]  # per group, the 0-based index of its last source

    @classmethod
    def build(cls, sources: Sequence[Source], limits: FleetLimits) -> DequeuePlan:
        groups: list[str] = []
        gates: list[str] = []
        group_of: list[int] = []
        gate_of: list[int] = []
        for source in sources:
            key = source.ref.routing_key
            if key not in groups:
                groups.append(key)
            group_of.append(groups.index(key) + 1)
            name = source.job_name
            if name is not None and name in limits.job_rate:
                if name not in gates:
                    gates.append(name)
                gate_of.append(gates.index(name) + 1)
            else:
                gate_of.append(0)
        group_last = [0] * len(groups)
        for index, group in enumerate(group_of):
            group_last[group - 1] = index
        return cls(list(sources), groups, group_of, gates, gate_of, group_last)


class WeightedRoundRobin:
    """Smooth weighted round robin: over any run of picks, each key's share matches its
    weight as closely as whole picks allow (gpu:6,email:3,default:1 -> 60/30/10)."""

    def __init__(self, weights: Mapping[str, int]) -> None:
        self._weights = dict(weights)
        self._current = dict.fromkeys(weights, 0)
        self._total = sum(weights.values())

    def next(self) -> str:
        for key, weight in self._weights.items():
            self._current[key] += weight
        best = max(self._current, key=lambda k: self._current[k])
        self._current[best] -= self._total
        return best

    def take(self, count: int) -> list[str]:
        return [self.next() for _ in range(count)]
