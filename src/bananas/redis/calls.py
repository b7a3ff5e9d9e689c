"""Builders of script calls: which keys and arguments each atomic operation takes.

Pure functions (no I/O), shared by the sync client, the async client and the worker.
"""

from __future__ import annotations

from collections.abc import Sequence

from bananas.core.job import Job
from bananas.core.limits import FleetLimits
from bananas.core.priority import Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY
from bananas.core.selection import DequeuePlan, Source
from bananas.redis import keys
from bananas.redis.scripts import Call, ScriptName

#: The bookkeeping of a lease: every script that ends one takes these first.
LEASE_KEYS = (keys.LEASES, keys.LEASE_OWNERS, keys.LEASE_ROUTES, keys.ROUTE_INFLIGHT)


def ready_queue_of(job: Job) -> str:
    return keys.route_queue(job.routing_key, job.priority)


def submit(job: Job, record: bytes) -> Call:
    return Call(
        ScriptName.SUBMIT,
        (keys.job(job.id), ready_queue_of(job), keys.ROUTING_KEYS),
        (job.id, record, job.routing_key, keys.route_notify_channel(job.routing_key)),
    )


def submit_many(routing_key: str, priority: Priority, ids: Sequence[str], records: Sequence[bytes]) -> Call:
    """New jobs that all share ``routing_key`` and ``priority``."""
    args: list[str | bytes] = [routing_key, keys.route_notify_channel(routing_key)]
    for job_id, record in zip(ids, records, strict=True):
        args.append(job_id)
        args.append(record)
    return Call(
        ScriptName.SUBMIT_MANY,
        (*(keys.job(i) for i in ids), keys.route_queue(routing_key, priority), keys.ROUTING_KEYS),
        tuple(args),
    )


def schedule(job: Job, record: bytes, due: float) -> Call:
    return Call(
        ScriptName.SCHEDULE,
        (keys.job(job.id), keys.SCHEDULED, keys.ROUTING_KEYS),
        (job.id, record, repr(due), job.routing_key, keys.SCHEDULED_NOTIFY_CHANNEL),
    )


def dequeue(
    plan: DequeuePlan,
    limits: FleetLimits,
    caps: Sequence[int],
    lease_ms: int,
    token: str,
    count: int,
    preferences: Sequence[int] = (),
) -> Call:
    """``caps``: per group of ``plan``, how many more jobs this worker may start (-1: no cap).
    ``lease_ms``: the lease length; the script starts it at the server's time of the grant."""
    args: list[str | int | float] = [lease_ms, token, count, len(plan.sources), len(plan.groups), len(plan.gates)]
    for index, key in enumerate(plan.groups):
        rate = limits.route_rate.get(key)
        args += [
            key,
            caps[index],
            limits.route_concurrency.get(key, 0),
            rate.interval_ms if rate else 0,
            rate.tolerance_ms if rate else 0,
        ]
    for name in plan.gates:
        rate = limits.job_rate[name]
        args += [rate.interval_ms, rate.tolerance_ms]
    for group, gate, source in zip(plan.group_of, plan.gate_of, plan.sources, strict=True):
        args += [group, gate, source.ref.priority.value]
    args += preferences
    return Call(
        ScriptName.DEQUEUE,
        (
            *LEASE_KEYS,
            *(source_key(s) for s in plan.sources),
            *(keys.route_rate(k) for k in plan.groups),
            *(keys.job_rate(n) for n in plan.gates),
            keys.PAUSED,
        ),
        tuple(args),
    )


def nonempty(key_names: Sequence[str]) -> Call:
    """Which of ``key_names`` exist (see nonempty.lua)."""
    return Call(ScriptName.NONEMPTY, tuple(key_names), ())


def source_key(source: Source) -> str:
    if source.job_name is not None:
        return keys.parked_queue(source.ref.routing_key, source.ref.priority, source.job_name)
    return keys.queue(source.ref)


def park(job: Job, token: str, record: bytes) -> Call:
    return Call(
        ScriptName.PARK,
        (
            *LEASE_KEYS,
            keys.job(job.id),
            keys.parked_queue(job.routing_key, job.priority, job.name),
            keys.parked_index(job.routing_key),
        ),
        (
            job.id,
            token,
            record,
            keys.parked_member(job.priority, job.name),
            keys.route_notify_channel(job.routing_key),
        ),
    )


def prune_parked(routing_key: str, members: Sequence[str]) -> Call:
    """Drop index members of ``routing_key`` whose parked list is empty."""
    lists: list[str] = []
    kept: list[str] = []
    for member in members:
        priority, _, name = member.partition(":")
        if priority in ("high", "normal", "low"):
            lists.append(keys.parked_queue(routing_key, priority, name))
            kept.append(member)
    return Call(ScriptName.PRUNE_PARKED, (keys.parked_index(routing_key), *lists), tuple(kept))


def start(job_id: str, token: str, record: bytes) -> Call:
    return Call(ScriptName.START, (keys.LEASE_OWNERS, keys.job(job_id)), (job_id, token, record))


def ack(
    job_id: str,
    token: str,
    record: bytes,
    ttl_seconds: int,
    result_ttl: int = 0,
    result: Sequence[str | bytes] = (),
) -> Call:
    """Finish a job; with ``result_ttl`` > 0 also store ``result`` (field/value pairs)."""
    return Call(
        ScriptName.ACK,
        (*LEASE_KEYS, keys.job(job_id), keys.result(job_id)),
        (job_id, token, record, ttl_seconds, result_ttl if result else 0, keys.result_notify_channel(job_id), *result),
    )


def ack_many(acks: Sequence[Call]) -> Call:
    """Merge several ``ack`` calls into one ``ack_many`` call (same effect, one script run)."""
    keys_out: list[str] = list(LEASE_KEYS)
    args_out: list[str | bytes | int | float] = []
    for call in acks:
        assert call.script is ScriptName.ACK
        keys_out += call.keys[4:6]
        header, fields = call.args[:6], call.args[6:]
        args_out += [*header, len(fields), *fields]
    return Call(ScriptName.ACK_MANY, tuple(keys_out), tuple(args_out))


def retry(job_id: str, token: str, record: bytes, due: float) -> Call:
    return Call(
        ScriptName.RETRY,
        (*LEASE_KEYS, keys.job(job_id), keys.SCHEDULED),
        (job_id, token, record, repr(due), keys.SCHEDULED_NOTIFY_CHANNEL),
    )


def bury(
    job_id: str,
    token: str,
    record: bytes,
    ttl_seconds: int,
    dead_cap: int,
    result_ttl: int = 0,
    result: Sequence[str | bytes] = (),
) -> Call:
    return Call(
        ScriptName.BURY,
        (*LEASE_KEYS, keys.job(job_id), keys.DEAD, keys.result(job_id)),
        (
            job_id,
            token,
            record,
            ttl_seconds,
            dead_cap,
            result_ttl if result else 0,
            keys.result_notify_channel(job_id),
            *result,
        ),
    )


def bury_scheduled(job_id: str, record: bytes, ttl_seconds: int, dead_cap: int) -> Call:
    return Call(
        ScriptName.BURY_SCHEDULED,
        (keys.SCHEDULED, keys.job(job_id), keys.DEAD),
        (job_id, record, ttl_seconds, dead_cap),
    )


def release(job: Job, token: str, record: bytes) -> Call:
    return Call(
        ScriptName.RELEASE,
        (*LEASE_KEYS, keys.job(job.id), ready_queue_of(job)),
        (job.id, token, record, keys.route_notify_channel(job.routing_key)),
    )


def drop(job_id: str, token: str) -> Call:
    """End a delivery that must not run (its record is already final); the record stays."""
    return Call(ScriptName.DROP, LEASE_KEYS, (job_id, token))


def extend(lease_ms: int, held: Sequence[tuple[str, str]]) -> Call:
    """Extend the leases in ``held`` to ``lease_ms`` from the server's time when it runs."""
    args: list[str | int] = [lease_ms]
    for job_id, token in held:
        args.append(job_id)
        args.append(token)
    return Call(ScriptName.EXTEND, (keys.LEASES, keys.LEASE_OWNERS), tuple(args))


def promote(job: Job, record: bytes) -> Call:
    return Call(
        ScriptName.PROMOTE,
        (keys.SCHEDULED, ready_queue_of(job), keys.job(job.id)),
        (job.id, record, keys.route_notify_channel(job.routing_key)),
    )


def recover_to_ready(job: Job, seen_token: str, now_ms: int, record: bytes) -> Call:
    return Call(
        ScriptName.RECOVER,
        (*LEASE_KEYS, keys.job(job.id), ready_queue_of(job), keys.result(job.id)),
        (job.id, seen_token, now_ms, record, "ready", keys.route_notify_channel(job.routing_key), 0, "", 0, 0),
    )


def recover_to_dead(
    job_id: str,
    seen_token: str,
    now_ms: int,
    record: bytes,
    result_ttl: int = 0,
    result: Sequence[str | bytes] = (),
    *,
    record_ttl: int = 0,
    dead_cap: int = 0,
) -> Call:
    return Call(
        ScriptName.RECOVER,
        (*LEASE_KEYS, keys.job(job_id), keys.DEAD, keys.result(job_id)),
        (
            job_id,
            seen_token,
            now_ms,
            record,
            "dead",
            "",
            result_ttl if result else 0,
            keys.result_notify_channel(job_id),
            record_ttl,
            dead_cap,
            *result,
        ),
    )


def dlq_retry(job: Job, seen_record: bytes, record: bytes) -> Call:
    """Move a dead job back to its own ready queue; ``seen_record`` guards against a
    record that changed since it was read."""
    return Call(
        ScriptName.DLQ_RETRY,
        (keys.DEAD, keys.job(job.id), ready_queue_of(job), keys.ROUTING_KEYS, keys.result(job.id)),
        (job.id, seen_record, record, job.routing_key, keys.route_notify_channel(job.routing_key)),
    )


def dlq_purge(job_ids: Sequence[str]) -> Call:
    """Remove ``job_ids`` from the dead letters, with their records and results."""
    return Call(
        ScriptName.DLQ_PURGE,
        (keys.DEAD, *(keys.job(i) for i in job_ids), *(keys.result(i) for i in job_ids)),
        tuple(job_ids),
    )


def rehome(
    job_id: str,
    home: str,
    *,
    home_queue: str,
    other_lists: Sequence[str] = (),
    seen_record_sha1: str = "",
    seen_owner: str = "",
    record: bytes = b"",
    score: float | int = 0,
    channel: str = "",
    orphan: bool = False,
    dead_cap: int = 0,
) -> Call:
    """Reconciler repair: put ``job_id`` in exactly one ``home`` (see rehome.lua)."""
    lists = tuple(dict.fromkeys(k for k in other_lists if k != home_queue))
    return Call(
        ScriptName.REHOME,
        (*LEASE_KEYS, keys.job(job_id), keys.SCHEDULED, keys.DEAD, home_queue, *lists),
        (job_id, seen_record_sha1, seen_owner, home, record, repr(score), channel, "1" if orphan else "0", dead_cap),
    )


def repair_inflight() -> Call:
    """Reconciler repair: drop lease routes without a lease, recount in-flight per key."""
    return Call(ScriptName.REPAIR_INFLIGHT, LEASE_KEYS, ())


#: Seconds a cancellation of a running job stays pending for its worker to see.
CANCEL_REQUEST_TTL = 24 * 3600


def cancel(
    job: Job, seen_record: bytes, record: bytes, result: Sequence[str | bytes], *, record_ttl: int, result_ttl: int
) -> Call:
    """Cancel ``job``: out of whichever list or set holds it, or ask its worker to stop."""
    lists = [ready_queue_of(job), keys.parked_queue(job.routing_key, job.priority, job.name)]
    if job.routing_key == DEFAULT_ROUTING_KEY:
        lists.append(keys.legacy_queue(job.priority))
    return Call(
        ScriptName.CANCEL,
        (keys.job(job.id), keys.SCHEDULED, keys.LEASE_OWNERS, keys.cancel_request(job.id), keys.result(job.id), *lists),
        (
            job.id, seen_record, record, record_ttl, CANCEL_REQUEST_TTL, keys.CANCEL_CHANNEL,
            result_ttl if result else 0, keys.result_notify_channel(job.id), *result,
        ),
    )  # fmt: skip


def purge(
    list_key: str,
    jobs: Sequence[tuple[str, bytes, Sequence[str | bytes]]],
    *,
    record_ttl: int,
    result_ttl: int,
) -> Call:
    """Remove ``jobs`` (id, cancelled record or b"", result fields), read from
    ``list_key``'s right end, rightmost first; see purge.lua."""
    args: list[str | bytes | int] = [record_ttl, result_ttl]
    for job_id, record, fields in jobs:
        args += [job_id, record, keys.result_notify_channel(job_id), len(fields), *fields]
    ids = [job_id for job_id, _, _ in jobs]
    return Call(
        ScriptName.PURGE, (list_key, *(keys.job(i) for i in ids), *(keys.result(i) for i in ids)), tuple(args)
    )
