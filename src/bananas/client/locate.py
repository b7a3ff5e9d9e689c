"""Where a job is now, and why: the answer to "what happened to my job?".

One pipelined round trip reads every place a job can be (ready list, parked list,
scheduled set, leases, dead letters); list positions are searched from the end workers
take from, within a bound, so a million queued jobs cost a bounded read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from bananas.core.clock import format_time, to_datetime
from bananas.core.job import Job, JobStatus
from bananas.core.routing import DEFAULT_ROUTING_KEY, QueueRef
from bananas.redis import keys
from bananas.redis.keys import KeyLayout

#: Most list entries searched for a job's position (LPOS MAXLEN).
SEARCH_BOUND = 100_000


@dataclass(frozen=True, slots=True)
class JobLocation:
    #: ready, parked, scheduled, running, dead, finished, nowhere
    place: str
    #: The Redis key holding the job's id there (None for finished or nowhere).
    key: str | None
    #: A sentence saying where the job is and why.
    reason: str
    #: Jobs ahead of it in its list (ready or parked; None if not searched that far).
    ahead: int | None = None
    #: Scheduled: when it becomes ready; running: when its lease runs out (Unix seconds).
    until: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "place": self.place,
            "key": self.key,
            "reason": self.reason,
            "ahead": self.ahead,
            "until": format_time(to_datetime(self.until)) if self.until is not None else None,
        }


def _ahead(index: Any, length: Any) -> int | None:
    """Jobs a worker takes before this one: producers push on the left and workers pop
    on the right, so those are the ones to the right of ``index``."""
    return None if index is None else max(int(length) - 1 - int(index), 0)


def locate(client: redis.Redis, job: Job, layout: KeyLayout = keys.STANDALONE) -> JobLocation:
    """Where ``job`` (its current record) is now, read in one round trip (on Cluster: in
    the slot of the routing key its id carries, where its lease and schedule entries are)."""
    home = layout.routing_key_of(job.id) or job.routing_key
    ready_key = layout.queue(job.routing_key, job.priority)
    parked_key = layout.parked_queue(job.routing_key, job.priority, job.name)
    scheduled_key, leases_key, dead_key = layout.scheduled(home), layout.leases(home), layout.dead(home)
    # The original Go fleet's unrouted lists exist on one server only.
    has_legacy = job.routing_key == DEFAULT_ROUTING_KEY and not layout.cluster
    legacy_key = layout.ref_queue(QueueRef(DEFAULT_ROUTING_KEY, job.priority, legacy=True)) if has_legacy else ""
    pipe = client.pipeline(transaction=False)
    pipe.zscore(scheduled_key, job.id)
    pipe.zscore(leases_key, job.id)
    pipe.execute_command("LPOS", ready_key, job.id, "RANK", -1, "MAXLEN", SEARCH_BOUND)  # type: ignore[no-untyped-call]
    pipe.execute_command("LPOS", parked_key, job.id, "RANK", -1, "MAXLEN", SEARCH_BOUND)  # type: ignore[no-untyped-call]
    pipe.execute_command("LPOS", dead_key, job.id, "MAXLEN", SEARCH_BOUND)  # type: ignore[no-untyped-call]
    pipe.llen(ready_key)
    pipe.llen(parked_key)
    if has_legacy:
        pipe.execute_command("LPOS", legacy_key, job.id, "RANK", -1, "MAXLEN", SEARCH_BOUND)  # type: ignore[no-untyped-call]
        pipe.llen(legacy_key)
    replies = pipe.execute()
    due, lease, ready_at, parked_at, dead, ready_len, parked_len = replies[:7]
    ready, parked = _ahead(ready_at, ready_len), _ahead(parked_at, parked_len)
    legacy = _ahead(replies[7], replies[8]) if len(replies) > 7 else None
    where = f"routing key {job.routing_key!r}, priority {job.priority.value}"
    if lease is not None:
        deadline = float(lease) / 1000.0
        return JobLocation(
            "running", leases_key, f"running (attempt {job.attempts}) on {where}; leased until its worker "
            "renews or finishes it", until=deadline,
        )  # fmt: skip
    if due is not None:
        why = "a retry after a failed attempt" if job.attempts > 0 else "scheduled by its producer"
        return JobLocation("scheduled", scheduled_key, f"scheduled ({why}); it moves to {ready_key} when due",
                           until=float(due))  # fmt: skip
    if ready is not None:
        return JobLocation("ready", ready_key, f"waiting in {ready_key} with {ready} job(s) ahead of it",
                           ahead=ready)  # fmt: skip
    if legacy is not None:
        return JobLocation("ready", legacy_key, f"waiting in the pre-routing list {legacy_key} (drained by "
                           f"'default' workers) with {legacy} job(s) ahead of it", ahead=legacy)  # fmt: skip
    if parked is not None:
        return JobLocation(
            "parked", parked_key,
            f"parked in {parked_key}: a worker took it but had no handler for {job.name!r} (or the name is rate "
            f"limited); it waits there for a worker on {job.routing_key!r} that runs {job.name!r}",
            ahead=parked,
        )  # fmt: skip
    if dead is not None:
        first = (job.error or "").split("\n", 1)[0]
        return JobLocation("dead", dead_key, f"in the dead letters after {job.attempts} attempt(s): {first}")
    if job.status in (JobStatus.COMPLETED, JobStatus.FAILED) or job.status.value in ("cancelled", "expired"):
        return JobLocation("finished", None, f"finished: {job.status.value}; it is in no list any more")
    return JobLocation(
        "nowhere", None,
        f"status {job.status.value!r} but in no list, set or lease right now (in transit between two steps, or "
        "its bookkeeping broke: `bananas reconcile` repairs that)",
    )  # fmt: skip
