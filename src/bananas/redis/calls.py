"""Builders of script calls: which keys and arguments each atomic operation takes.

Pure functions (no I/O), shared by the sync client, the async client and the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bananas.core.job import Job
from bananas.core.limits import FleetLimits
from bananas.core.priority import Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY
from bananas.core.selection import DequeuePlan, Source
from bananas.core.workflow import step_link, unique_key_of, workflow_result_ttl
from bananas.redis import keys
from bananas.redis.scripts import Call, ScriptName

#: The bookkeeping of a lease: every script that ends one takes these first.
LEASE_KEYS = (keys.LEASES, keys.LEASE_OWNERS, keys.LEASE_ROUTES, keys.ROUTE_INFLIGHT)


def ready_queue_of(job: Job) -> str:
    return keys.route_queue(job.routing_key, job.priority)


def submit(job: Job, record: bytes, *, queue: str | None = None) -> Call:
    """``queue`` overrides the job's ready list (migration mode: a legacy list)."""
    return Call(
        ScriptName.SUBMIT,
        (keys.job(job.id), queue or ready_queue_of(job), keys.ROUTING_KEYS),
        (job.id, record, job.routing_key, keys.route_notify_channel(job.routing_key)),
    )


def submit_many(
    routing_key: str, priority: Priority, ids: Sequence[str], records: Sequence[bytes], *, queue: str | None = None
) -> Call:
    """New jobs that all share ``routing_key`` and ``priority`` (``queue`` as in ``submit``)."""
    args: list[str | bytes] = [routing_key, keys.route_notify_channel(routing_key)]
    for job_id, record in zip(ids, records, strict=True):
        args.append(job_id)
        args.append(record)
    return Call(
        ScriptName.SUBMIT_MANY,
        (*(keys.job(i) for i in ids), queue or keys.route_queue(routing_key, priority), keys.ROUTING_KEYS),
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
            keys.job(""),  # the prefix of this routing key's job records: read in the same call
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


def reroute(job: Job, token: str) -> Call:
    """A leased job found in another routing key's list (a legacy list included) goes to
    its own ready list, unrun (see reroute.lua)."""
    return Call(
        ScriptName.REROUTE,
        (*LEASE_KEYS, ready_queue_of(job), keys.ROUTING_KEYS),
        (job.id, token, job.routing_key, keys.route_notify_channel(job.routing_key)),
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


def drop_if_held(job_id: str, token: str) -> Call:
    """End the delivery, unrun, if an original Go worker runs the job (see the script)."""
    return Call(ScriptName.DROP_IF_HELD, (*LEASE_KEYS, keys.ORIGINAL_PROCESSING), (job_id, token))


def extend(lease_ms: int, held: Sequence[tuple[str, str]]) -> Call:
    """Extend the leases in ``held`` to ``lease_ms`` from the server's time when it runs."""
    args: list[str | int] = [lease_ms]
    for job_id, token in held:
        args.append(job_id)
        args.append(token)
    return Call(ScriptName.EXTEND, (keys.LEASES, keys.LEASE_OWNERS), tuple(args))


def promote(job: Job, record: bytes, *, legacy_default: bool = False) -> Call:
    """``legacy_default`` (migration mode): a ``default`` job goes to the legacy list of
    its priority, where original Go workers can take it too."""
    queue = (
        keys.legacy_queue(job.priority)
        if legacy_default and job.routing_key == DEFAULT_ROUTING_KEY
        else ready_queue_of(job)
    )
    return Call(
        ScriptName.PROMOTE,
        (keys.SCHEDULED, queue, keys.job(job.id)),
        (job.id, record, keys.route_notify_channel(job.routing_key)),
    )


def recover_to_ready(job: Job, seen_token: str, now_ms: int, record: bytes) -> Call:
    return Call(
        ScriptName.RECOVER,
        (*LEASE_KEYS, keys.job(job.id), ready_queue_of(job), keys.result(job.id), keys.ORIGINAL_PROCESSING),
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
        (*LEASE_KEYS, keys.job(job_id), keys.DEAD, keys.result(job_id), keys.ORIGINAL_PROCESSING),
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
    if orphan:
        # An original Go worker may have taken the id between the reconciler's reads: the
        # script's orphan check must look in its processing list too.
        lists = (*(k for k in lists if k != keys.ORIGINAL_PROCESSING), keys.ORIGINAL_PROCESSING)
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


# -- workflows, unique jobs, progress (docs/WORKFLOWS.md) ---------------------------------


def submit_unique(job: Job, record: bytes, unique_key: str, unique_for: int) -> Call:
    """Queue ``job`` unless another job holds ``unique_key``; replies the holder's id."""
    return Call(
        ScriptName.SUBMIT_UNIQUE,
        (keys.job(job.id), ready_queue_of(job), keys.ROUTING_KEYS, keys.unique_lock(unique_key)),
        (job.id, record, job.routing_key, keys.route_notify_channel(job.routing_key), unique_for),
    )


def submit_workflow(
    workflow_id: str,
    spec: bytes,
    ttl_seconds: int,
    first: Sequence[tuple[Job, bytes]],
    waiting: Sequence[tuple[str, bytes]],
) -> Call:
    """Store a workflow and queue its first stage (``first``); the steps of later stages
    (``waiting``) are kept in the workflow hash until their stage starts."""
    keys_out: list[str] = [keys.workflow(workflow_id), keys.ROUTING_KEYS]
    args: list[str | bytes | int] = [ttl_seconds, spec, len(waiting)]
    for step_id, record in waiting:
        args += [step_id, record]
    for job, record in first:
        keys_out += [keys.job(job.id), ready_queue_of(job)]
        args += [job.id, record, job.routing_key, keys.route_notify_channel(job.routing_key)]
    return Call(ScriptName.SUBMIT_WORKFLOW, tuple(keys_out), tuple(args))


@dataclass(frozen=True, slots=True)
class StepEnd:
    """What ``finish`` needs to hand a workflow step's end on (see finish.lua)."""

    workflow_id: str
    stage: int
    index: int
    size: int
    is_group: bool
    allow_failure: bool
    #: Next stage: (id, routing key, priority) per step.
    next: Sequence[tuple[str, str, Priority]]
    result_json: bytes
    error: str
    kept_seconds: int
    now: str


def finish(
    job_id: str,
    token: str,
    record: bytes,
    ttl_seconds: int,
    status: str,
    *,
    dead_cap: int = -1,
    result_ttl: int = 0,
    result: Sequence[str | bytes] = (),
    unique_key: str | None = None,
    step: StepEnd | None = None,
) -> Call:
    """End a leased job that carries hand-offs: release its unique lock, hand a workflow
    step on to the next stage (or fail its workflow). ``dead_cap`` -1: no dead letter."""
    keys_out: list[str] = [*LEASE_KEYS, keys.job(job_id), keys.result(job_id), keys.DEAD]
    if unique_key is not None:
        keys_out.append(keys.unique_lock(unique_key))
    args: list[str | bytes | int] = [
        job_id, token, record, ttl_seconds, status, dead_cap, result_ttl if result else 0,
        keys.result_notify_channel(job_id), 1 if unique_key is not None else 0,
    ]  # fmt: skip
    if step is None:
        args += [0, 0, 0, 0, 0, 0, "null", "", 0, "", "", 0]
    else:
        keys_out += [keys.workflow(step.workflow_id), keys.result(step.workflow_id), keys.ROUTING_KEYS]
        args += [
            1, step.stage, step.index, step.size, 1 if step.is_group else 0, 1 if step.allow_failure else 0,
            step.result_json, step.error, step.kept_seconds, keys.result_notify_channel(step.workflow_id),
            step.now, len(step.next),
        ]  # fmt: skip
        for next_id, routing_key, priority in step.next:
            keys_out += [keys.job(next_id), keys.route_queue(routing_key, priority)]
            args += [next_id, routing_key, keys.route_notify_channel(routing_key)]
    args.append(len(result) if result_ttl else 0)
    if result_ttl:
        args += result
    return Call(ScriptName.FINISH, tuple(keys_out), tuple(args))


def progress(job_id: str, token: str, fraction: float, message: str, at: str, ttl_seconds: int) -> Call:
    return Call(
        ScriptName.PROGRESS,
        (keys.LEASE_OWNERS, keys.progress(job_id)),
        (job_id, token, repr(float(fraction)), message, at, ttl_seconds, keys.progress_notify_channel(job_id)),
    )


def abandon(
    job_id: str,
    unique_key: str | None,
    workflow_id: str | None,
    kept_seconds: int,
    now: str,
    *,
    status: str = "cancelled",
    reason: str = "",
) -> Call:
    """A job ended without a worker (cancelled, or parked as a poison pill): release its
    unique key, fail its workflow; applies only if its record has ``status``."""
    lock = keys.unique_lock(unique_key) if unique_key is not None else keys.job(job_id)
    flow = keys.workflow(workflow_id) if workflow_id is not None else keys.job(job_id)
    outcome = keys.result(workflow_id) if workflow_id is not None else keys.result(job_id)
    channel = keys.result_notify_channel(workflow_id) if workflow_id is not None else ""
    args = (
        job_id, 1 if unique_key is not None else 0, 1 if workflow_id is not None else 0, kept_seconds, channel,
        now, status, reason or f"step {job_id} {status}",
    )  # fmt: skip
    return Call(ScriptName.ABANDON, (keys.job(job_id), lock, flow, outcome), args)


def abandon_job(job: Job, now: str, *, status: str = "cancelled", reason: str = "") -> Call | None:
    """``abandon`` for ``job`` if it carries hand-offs (a workflow, a unique key), else None."""
    link = step_link(job)
    unique_key = unique_key_of(job)
    if link is None and unique_key is None:
        return None
    workflow_id = link.workflow_id if link is not None else None
    return abandon(job.id, unique_key, workflow_id, workflow_result_ttl(job), now, status=status, reason=reason)
