"""Queue statistics (what ``bananas queues`` shows), shared by both clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
class QueueStats:
    queues: list[QueueDepth]
    scheduled: int
    processing: int
    dead: int

    def ready(self, routing_key: str, priority: Priority | str) -> int:
        prio = Priority.parse(priority)
        return sum(q.ready for q in self.queues if q.routing_key == routing_key and q.priority is prio)


@dataclass(frozen=True, slots=True)
class DepthPlan:
    refs: list[QueueRef]

    @property
    def list_keys(self) -> list[str]:
        return [keys.queue(r) for r in self.refs]


def depth_plan(routing_keys: Sequence[str]) -> DepthPlan:
    names = sorted(set(routing_keys) | {DEFAULT_ROUTING_KEY})
    refs = [QueueRef(k, p) for k in names for p in DEFAULT_PRIORITIES]
    refs += [QueueRef(DEFAULT_ROUTING_KEY, p, legacy=True) for p in DEFAULT_PRIORITIES]
    return DepthPlan(refs)


def parse_depths(plan: DepthPlan, replies: Sequence[int]) -> QueueStats:
    n = len(plan.refs)
    depths = [QueueDepth(ref.routing_key, ref.priority, int(replies[i]), ref.legacy) for i, ref in enumerate(plan.refs)]
    return QueueStats(depths, int(replies[n]), int(replies[n + 1]), int(replies[n + 2]))
