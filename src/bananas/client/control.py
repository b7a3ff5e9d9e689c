"""Fleet actions shared by both clients: pause, resume and purge a routing key.

Like the readers in ``inspect.py``, each action is a generator that yields batches
(raw commands, sent as one pipeline, or script ``Call``s) and receives their replies;
``Client`` and ``AsyncClient`` only carry the batches to Redis.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from bananas.config import DEFAULT_FAILED_TTL, DEFAULT_RESULT_FAILURE_TTL
from bananas.core.clock import to_datetime
from bananas.core.codec import decode_id
from bananas.core.job import Job
from bananas.core.lifecycle import mark_cancelled
from bananas.core.priority import DEFAULT_PRIORITIES, Priority
from bananas.core.result import CANCELLED, result_fields
from bananas.core.routing import DEFAULT_ROUTING_KEY, validate_routing_key
from bananas.errors import MalformedJobError
from bananas.redis import calls, keys
from bananas.redis.keys import KeyLayout
from bananas.redis.scripts import Call

Command = tuple[Any, ...]
Batch = list[Command] | list[Call]
Action = Generator[Batch, list[Any], Any]

#: Ids removed per purge script call (one atomic step; a list up to this long is
#: removed in one step).
PURGE_CHUNK = 2000
#: Seconds a purged job's record (status ``cancelled``) and its result are kept: as
#: long as those of a job cancelled with ``bananas cancel``.
PURGED_RECORD_TTL = DEFAULT_FAILED_TTL
PURGED_RESULT_TTL = DEFAULT_RESULT_FAILURE_TTL


def target(routing_key: str, priority: Priority | str | None) -> tuple[str, Priority | None]:
    """Validate a pause/resume/purge target; raises ``ValidationError`` naming the problem."""
    key = validate_routing_key(routing_key)
    return key, None if priority is None else Priority.parse(priority)


def pause(routing_key: str, priority: Priority | str | None, now: float, layout: KeyLayout = keys.STANDALONE) -> Action:
    """Returns True if it was not paused before (a second pause keeps the first time)."""
    key, prio = target(routing_key, priority)
    command: Command = ("HSETNX", layout.paused(key), keys.paused_field(key, prio), f"{now:.3f}")
    if not layout.cluster:
        (added,) = yield [command]
    else:
        # The pause flag is in the routing key's slot; readers find it through the
        # routing-key registry, so the key is added there too (idempotent).
        added, _ = yield [command, ("SADD", keys.ROUTING_KEYS, key)]
    return bool(added)


def resume(routing_key: str, priority: Priority | str | None, layout: KeyLayout = keys.STANDALONE) -> Action:
    """Returns True if it was paused. Wakes the workers of the key: the jobs that waited
    while it was paused are taken at once."""
    key, prio = target(routing_key, priority)
    # Cluster: the wake-up channel is a shard channel of the key's slot (SPUBLISH).
    publish = "SPUBLISH" if layout.cluster else "PUBLISH"
    removed, _ = yield [
        ("HDEL", layout.paused(key), keys.paused_field(key, prio)),
        (publish, layout.notify_channel(key), "1"),
    ]
    return bool(removed)


def purge(
    routing_key: str,
    priority: Priority | str | None,
    now: float,
    *,
    layout: KeyLayout = keys.STANDALONE,
    dry_run: bool = False,
    record_ttl: int = PURGED_RECORD_TTL,
) -> Action:
    """Remove the jobs ready on ``routing_key`` (one priority of it, or all) when the purge
    starts: its ready lists, its parked lists and, for ``default``, the legacy lists.
    Each is marked as ``cancel`` marks a waiting job: record status ``cancelled`` (kept
    ``record_ttl`` seconds), a "cancelled" result, so result waiters get
    ``JobCancelledError``. Returns how many were removed (with ``dry_run``: how many
    are ready, removing nothing)."""
    key, prio = target(routing_key, priority)
    (members,) = yield [("SMEMBERS", layout.parked_index(key))]
    lists = _lists(key, prio, members, layout)
    depths = yield [("LLEN", name) for name in lists]
    if dry_run:
        return sum(int(d) for d in depths)
    total = 0
    for name, depth in zip(lists, depths, strict=True):
        total += yield from _purge_list(name, int(depth), now, record_ttl, layout)
    return total


def _lists(key: str, prio: Priority | None, members: Sequence[Any], layout: KeyLayout) -> list[str]:
    priorities = [prio] if prio is not None else list(DEFAULT_PRIORITIES)
    lists: list[str] = []
    for p in priorities:
        lists.append(layout.queue(key, p))
        if key == DEFAULT_ROUTING_KEY and not layout.cluster:
            lists.append(layout.legacy_queue(p))
    for member in sorted(decode_id(m) for m in members):
        member_prio, _, name = member.partition(":")
        if member_prio in {p.value for p in priorities} and name:
            lists.append(layout.parked_queue(key, member_prio, name))
    return lists


def _purge_list(
    name: str, depth: int, now: float, record_ttl: int, layout: KeyLayout
) -> Generator[Batch, list[Any], int]:
    removed = 0
    stalled = 0
    while removed < depth and stalled < 3:
        (tail,) = yield [("LRANGE", name, -min(PURGE_CHUNK, depth - removed), -1)]
        ids = [decode_id(i) for i in reversed(tail)]
        if not ids:
            break
        if layout.cluster:
            # Every id of a routing key's list carries it (the purge script runs in its
            # slot); a foreign id without one cannot have a record there.
            ids = [i for i in ids if layout.routing_key_of(i) is not None]
            if not ids:
                break
        (raw,) = yield [("MGET", *(layout.job(i) for i in ids))]
        jobs = [_cancelled(job_id, record, now) for job_id, record in zip(ids, raw, strict=True)]
        (got,) = yield [calls.purge(name, jobs, record_ttl=record_ttl, result_ttl=PURGED_RESULT_TTL, layout=layout)]
        if isinstance(got, Exception):
            raise got
        removed += int(got)
        stalled = 0 if got else stalled + 1
    return removed


def _cancelled(job_id: str, raw: bytes | None, now: float) -> tuple[str, bytes, list[str | bytes]]:
    """(id, record marked cancelled, result fields); an unreadable record is left as it is."""
    if raw is None:
        return job_id, b"", []
    try:
        job = Job.from_record(raw, job_id=job_id)
    except MalformedJobError:
        return job_id, b"", []
    mark_cancelled(job, to_datetime(now))
    job.extra["cancelled_by"] = "purge"
    return job_id, job.to_record(), result_fields(job, status=CANCELLED, started=now, finished=now, worker="")
