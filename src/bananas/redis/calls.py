"""Builders of script calls: which keys and arguments each atomic operation takes.

Pure functions (no I/O), shared by the sync client, the async client and the worker.
"""

from __future__ import annotations

from collections.abc import Sequence

from bananas.core.job import Job
from bananas.core.routing import QueueRef
from bananas.redis import keys
from bananas.redis.scripts import Call, ScriptName


def ready_queue_of(job: Job) -> str:
    return keys.route_queue(job.routing_key, job.priority)


def submit(job: Job, record: bytes) -> Call:
    return Call(
        ScriptName.SUBMIT,
        (keys.job(job.id), ready_queue_of(job), keys.ROUTING_KEYS),
        (job.id, record, job.routing_key, keys.route_notify_channel(job.routing_key)),
    )


def submit_many(jobs: Sequence[Job], records: Sequence[bytes]) -> Call:
    """All jobs share one routing key and priority (that of the first)."""
    first = jobs[0]
    args: list[str | bytes] = [first.routing_key, keys.route_notify_channel(first.routing_key)]
    for job, record in zip(jobs, records, strict=True):
        args.append(job.id)
        args.append(record)
    return Call(
        ScriptName.SUBMIT_MANY,
        (*(keys.job(j.id) for j in jobs), ready_queue_of(first), keys.ROUTING_KEYS),
        tuple(args),
    )


def schedule(job: Job, record: bytes, due: float) -> Call:
    return Call(
        ScriptName.SCHEDULE,
        (keys.job(job.id), keys.SCHEDULED, keys.ROUTING_KEYS),
        (job.id, record, repr(due), job.routing_key, keys.SCHEDULED_NOTIFY_CHANNEL),
    )


def dequeue(queues: Sequence[QueueRef], deadline_ms: int, token: str, count: int) -> Call:
    return Call(
        ScriptName.DEQUEUE,
        (keys.LEASES, keys.LEASE_OWNERS, *(keys.queue(q) for q in queues)),
        (deadline_ms, token, count),
    )


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
        (keys.LEASES, keys.LEASE_OWNERS, keys.job(job_id), keys.result(job_id)),
        (job_id, token, record, ttl_seconds, result_ttl if result else 0, keys.result_notify_channel(job_id), *result),
    )


def ack_many(acks: Sequence[Call]) -> Call:
    """Merge several ``ack`` calls into one ``ack_many`` call (same effect, one script run)."""
    keys_out: list[str] = [keys.LEASES, keys.LEASE_OWNERS]
    args_out: list[str | bytes | int | float] = []
    for call in acks:
        assert call.script is ScriptName.ACK
        keys_out += call.keys[2:4]
        header, fields = call.args[:6], call.args[6:]
        args_out += [*header, len(fields), *fields]
    return Call(ScriptName.ACK_MANY, tuple(keys_out), tuple(args_out))


def retry(job_id: str, token: str, record: bytes, due: float) -> Call:
    return Call(
        ScriptName.RETRY,
        (keys.LEASES, keys.LEASE_OWNERS, keys.job(job_id), keys.SCHEDULED),
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
        (keys.LEASES, keys.LEASE_OWNERS, keys.job(job_id), keys.DEAD, keys.result(job_id)),
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


def release(job: Job, token: str, record: bytes) -> Call:
    return Call(
        ScriptName.RELEASE,
        (keys.LEASES, keys.LEASE_OWNERS, keys.job(job.id), ready_queue_of(job)),
        (job.id, token, record, keys.route_notify_channel(job.routing_key)),
    )


def extend(deadline_ms: int, held: Sequence[tuple[str, str]]) -> Call:
    args: list[str | int] = [deadline_ms]
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
        (keys.LEASES, keys.LEASE_OWNERS, keys.job(job.id), ready_queue_of(job), keys.result(job.id)),
        (job.id, seen_token, now_ms, record, "ready", keys.route_notify_channel(job.routing_key), 0, ""),
    )


def recover_to_dead(
    job_id: str,
    seen_token: str,
    now_ms: int,
    record: bytes,
    result_ttl: int = 0,
    result: Sequence[str | bytes] = (),
) -> Call:
    return Call(
        ScriptName.RECOVER,
        (keys.LEASES, keys.LEASE_OWNERS, keys.job(job_id), keys.DEAD, keys.result(job_id)),
        (
            job_id,
            seen_token,
            now_ms,
            record,
            "dead",
            "",
            result_ttl if result else 0,
            keys.result_notify_channel(job_id),
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
) -> Call:
    """Reconciler repair: put ``job_id`` in exactly one ``home`` (see rehome.lua)."""
    lists = tuple(dict.fromkeys(k for k in other_lists if k != home_queue))
    return Call(
        ScriptName.REHOME,
        (keys.LEASES, keys.LEASE_OWNERS, keys.job(job_id), keys.SCHEDULED, keys.DEAD, home_queue, *lists),
        (job_id, seen_record_sha1, seen_owner, home, record, repr(score), channel, "1" if orphan else "0"),
    )
