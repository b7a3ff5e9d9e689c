"""Queue statistics (what ``bananas queues`` shows), shared by both clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bananas.core.priority import DEFAULT_PRIORITIES, Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY, QueueRef
from bananas.redis import keys


@dataclass(frozen=True, slots=True)
class QueueDepth:
    routing_key: str
    priority: Priority
    ready: int
    legacy: bool = False

    @property
    def key(self) -> str:
        return keys.queue(QueueRef(self.routing_key, self.priority, self.legacy))


@dataclass(frozen=True, slots=True)
class ParkedDepth:
    """Jobs of one name waiting for a worker that runs it (no handler where they were
    taken, or their name is rate limited); see docs/TASK_ROUTING_USAGE.md."""

    routing_key: str
    priority: Priority
    job_name: str
    waiting: int

    @property
    def key(self) -> str:
        return keys.parked_queue(self.routing_key, self.priority, self.job_name)


@dataclass(frozen=True, slots=True)
class QueueStats:
    queues: list[QueueDepth]
    scheduled: int
    processing: int
    dead: int
    parked: list[ParkedDepth] = field(default_factory=list)
    #: Jobs original Go workers are running (``bananas:queue:processing``, docs/MIGRATING.md).
    original_processing: int = 0

    def ready(self, routing_key: str, priority: Priority | str) -> int:
        prio = Priority.parse(priority)
        return sum(q.ready for q in self.queues if q.routing_key == routing_key and q.priority is prio)


@dataclass(frozen=True, slots=True)
class DepthPlan:
    """Read in two round trips: the lists, counters and parked indexes; then the parked lists."""

    refs: list[QueueRef]
    routing_keys: list[str]

    @property
    def list_keys(self) -> list[str]:
        return [keys.queue(r) for r in self.refs]


def depth_plan(routing_keys: Sequence[str]) -> DepthPlan:
    names = sorted(set(routing_keys) | {DEFAULT_ROUTING_KEY})
    refs = [QueueRef(k, p) for k in names for p in DEFAULT_PRIORITIES]
    refs += [QueueRef(DEFAULT_ROUTING_KEY, p, legacy=True) for p in DEFAULT_PRIORITIES]
    return DepthPlan(refs, names)


def first_round(plan: DepthPlan) -> list[tuple[str, str]]:
    """(command, key) pairs of the first round trip."""
    commands = [("LLEN", key) for key in plan.list_keys]
    commands += [("ZCARD", keys.SCHEDULED), ("ZCARD", keys.LEASES), ("LLEN", keys.DEAD)]
    commands += [("LLEN", keys.ORIGINAL_PROCESSING)]
    commands += [("SMEMBERS", keys.parked_index(k)) for k in plan.routing_keys]
    return commands


def parked_candidates(plan: DepthPlan, replies: Sequence[Any]) -> list[ParkedDepth]:
    """Parked lists named by the indexes (their depth still to be read)."""
    out: list[ParkedDepth] = []
    members = replies[len(plan.refs) + 4 :]
    for key, names in zip(plan.routing_keys, members, strict=True):
        for member in sorted(m.decode() if isinstance(m, bytes) else m for m in names):
            prio, _, name = member.partition(":")
            try:
                out.append(ParkedDepth(key, Priority.parse(prio), name, 0))
            except ValueError:
                continue
    return out


def parse_depths(
    plan: DepthPlan, replies: Sequence[Any], parked: Sequence[ParkedDepth] = (), parked_depths: Sequence[int] = ()
) -> QueueStats:
    n = len(plan.refs)
    depths = [QueueDepth(ref.routing_key, ref.priority, int(replies[i]), ref.legacy) for i, ref in enumerate(plan.refs)]
    waiting = [
        ParkedDepth(p.routing_key, p.priority, p.job_name, int(d))
        for p, d in zip(parked, parked_depths, strict=True)
        if int(d) > 0
    ]
    return QueueStats(
        depths,
        int(replies[n]),
        int(replies[n + 1]),
        int(replies[n + 2]),
        waiting,
        original_processing=int(replies[n + 3]),
    )
