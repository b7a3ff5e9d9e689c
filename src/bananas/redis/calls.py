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
from bananas.redis.keys import KeyLayout
from bananas.redis.scripts import Call, ScriptName

# Every builder takes the key layout (``layout=``, redis/keys.py): the standalone names
# or the cluster ones, where every key of one call shares its routing key's slot.


def ready_queue_of(job: Job, layout: KeyLayout) -> str:
    return layout.queue(job.routing_key, job.priority)


def route_of(job_id: str, layout: KeyLayout) -> str:
    """The routing key whose slot holds ``job_id``'s bookkeeping ("" in the standalone
    layout, where the lease and schedule sets are fleet-wide)."""
    return layout.routing_key_of(job_id) or ""


def submit(job: Job, record: bytes, *, layout: KeyLayout, queue: str | None = None) -> Call:
    """``queue`` overrides the job's ready list (migration mode: a legacy list)."""
    rk = job.routing_key
    return Call(
        ScriptName.SUBMIT,
        (layout.job(job.id), queue or ready_queue_of(job, layout), layout.known(rk)),
        (job.id, record, rk, layout.notify_channel(rk)),
    )


def submit_many(
    routing_key: str,
    priority: Priority,
    ids: Sequence[str],
    records: Sequence[bytes],
    *,
    layout: KeyLayout,
    queue: str | None = None,
) -> Call:
    """New jobs that all share ``routing_key`` and ``priority`` (``queue`` as in ``submit``)."""
    args: list[str | bytes] = [routing_key, layout.notify_channel(routing_key)]
    for job_id, record in zip(ids, records, strict=True):
        args.append(job_id)
        args.append(record)
    return Call(
        ScriptName.SUBMIT_MANY,
        (
            *(layout.job(i) for i in ids),
            queue or layout.queue(routing_key, priority),
            layout.known(routing_key),
        ),
        tuple(args),
    )


def schedule(job: Job, record: bytes, due: float, *, layout: KeyLayout) -> Call:
    rk = job.routing_key
    return Call(
        ScriptName.SCHEDULE,
        (layout.job(job.id), layout.scheduled(rk), layout.known(rk)),
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
    *,
    layout: KeyLayout,
) -> Call:
    """``caps``: per group of ``plan``, how many more jobs this worker may start (-1: no cap).
    ``lease_ms``: the lease length; the script starts it at the server's time of the grant.
    In the cluster layout ``plan`` must cover the routing keys of one slot group
    (``layout.slot_groups``): the script runs in one slot."""
    return DequeueShape.of(plan, limits, caps, preferences, layout=layout).call(lease_ms, token, count)


@dataclass(frozen=True, slots=True)
class DequeueShape:
    """A dequeue call without its per-call values (lease length, token, count): what a
    plan, the limits, the caps and the preferences make of it. The fetcher keeps the
    last one and reuses it while none of those changed, so a pick-up does not rebuild
    the keys and arguments of every list it looks at."""

    keys: tuple[str, ...]
    tail: tuple[str | int | float, ...]

    @classmethod
    def of(
        cls,
        plan: DequeuePlan,
        limits: FleetLimits,
        caps: Sequence[int],
        preferences: Sequence[int] = (),
        *,
        layout: KeyLayout,
    ) -> DequeueShape:
        rk = plan.sources[0].ref.routing_key
        args: list[str | int | float] = [len(plan.sources), len(plan.groups), len(plan.gates)]
        for index, key in enumerate(plan.groups):
            rate = limits.route_rate.get(key)
            args += [
                key,
                caps[index],
                limits.route_concurrency.get(key, 0),
                rate.interval_ms if rate else 0,
                rate.tolerance_ms if rate else 0,
                layout.job_prefix(key),  # the prefix of this routing key's job records: read in the same call
            ]
        for name in plan.gates:
            rate = limits.job_rate[name]
            args += [rate.interval_ms, rate.tolerance_ms]
        for group, gate, source in zip(plan.group_of, plan.gate_of, plan.sources, strict=True):
            args += [group, gate, source.ref.priority.value]
        args += preferences
        keys = (
            *layout.lease_keys(rk),
            *(source_key(s, layout) for s in plan.sources),
            *(layout.route_rate(k) for k in plan.groups),
            *(layout.job_rate(rk, n) for n in plan.gates),
            layout.paused(rk),
        )
        return cls(keys, tuple(args))

    def call(self, lease_ms: int, token: str, count: int) -> Call:
        return Call(ScriptName.DEQUEUE, self.keys, (lease_ms, token, count, *self.tail))


def nonempty(key_names: Sequence[str]) -> Call:
    """Which of ``key_names`` exist (see nonempty.lua)."""
    return Call(ScriptName.NONEMPTY, tuple(key_names), ())


def source_key(source: Source, layout: KeyLayout) -> str:
    if source.job_name is not None:
        return layout.parked_queue(source.ref.routing_key, source.ref.priority, source.job_name)
    return layout.ref_queue(source.ref)


def park(job: Job, token: str, record: bytes, *, layout: KeyLayout) -> Call:
    return Call(
        ScriptName.PARK,
        (
            *layout.lease_keys(route_of(job.id, layout)),
            layout.job(job.id),
            layout.parked_queue(job.routing_key, job.priority, job.name),
            layout.parked_index(job.routing_key),
        ),
        (
            job.id,
            token,
            record,
            keys.parked_member(job.priority, job.name),
            layout.notify_channel(job.routing_key),
        ),
    )


def reroute(job: Job, token: str, *, layout: KeyLayout) -> Call:
    """A leased job found in another routing key's list (a legacy list included) goes to
    its own ready list, unrun (see reroute.lua)."""
    return Call(
        ScriptName.REROUTE,
        (*layout.lease_keys(route_of(job.id, layout)), ready_queue_of(job, layout), layout.known(job.routing_key)),
        (job.id, token, job.routing_key, layout.notify_channel(job.routing_key)),
    )


def prune_parked(routing_key: str, members: Sequence[str], *, layout: KeyLayout) -> Call:
    """Drop index members of ``routing_key`` whose parked list is empty."""
    lists: list[str] = []
    kept: list[str] = []
    for member in members:
        priority, _, name = member.partition(":")
        if priority in ("high", "normal", "low"):
            lists.append(layout.parked_queue(routing_key, priority, name))
            kept.append(member)
    return Call(ScriptName.PRUNE_PARKED, (layout.parked_index(routing_key), *lists), tuple(kept))


def start(job_id: str, token: str, record: bytes, *, layout: KeyLayout) -> Call:
    owners = layout.lease_owners(route_of(job_id, layout))
    return Call(ScriptName.START, (owners, layout.job(job_id)), (job_id, token, record))


def ack(
    job_id: str,
    token: str,
    record: bytes,
    ttl_seconds: int,
    result_ttl: int = 0,
    result: Sequence[str | bytes] = (),
    *,
    layout: KeyLayout,
) -> Call:
    """Finish a job; with ``result_ttl`` > 0 also store ``result`` (field/value pairs)."""
    return Call(
        ScriptName.ACK,
        (*layout.lease_keys(route_of(job_id, layout)), layout.job(job_id), layout.result(job_id)),
        (job_id, token, record, ttl_seconds, result_ttl if result else 0, layout.result_channel(job_id), *result),
    )


def ack_many(acks: Sequence[Call]) -> Call:
    """Merge several ``ack`` calls of one slot (the same lease keys) into one ``ack_many``
    call (same effect, one script run); ``merge_acks`` groups them first."""
    keys_out: list[str] = list(acks[0].keys[:4])
    args_out: list[str | bytes | int | float] = []
    for call in acks:
        assert call.script is ScriptName.ACK and call.keys[:4] == acks[0].keys[:4]
        keys_out += call.keys[4:6]
        header, fields = call.args[:6], call.args[6:]
        args_out += [*header, len(fields), *fields]
    return Call(ScriptName.ACK_MANY, tuple(keys_out), tuple(args_out))


def retry(job_id: str, token: str, record: bytes, due: float, *, layout: KeyLayout) -> Call:
    rk = route_of(job_id, layout)
    return Call(
        ScriptName.RETRY,
        (*layout.lease_keys(rk), layout.job(job_id), layout.scheduled(rk)),
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
    *,
    layout: KeyLayout,
) -> Call:
    rk = route_of(job_id, layout)
    return Call(
        ScriptName.BURY,
        (*layout.lease_keys(rk), layout.job(job_id), layout.dead(rk), layout.result(job_id)),
        (
            job_id,
            token,
            record,
            ttl_seconds,
            dead_cap,
            result_ttl if result else 0,
            layout.result_channel(job_id),
            *result,
        ),
    )


def bury_scheduled(job_id: str, record: bytes, ttl_seconds: int, dead_cap: int, *, layout: KeyLayout) -> Call:
    rk = route_of(job_id, layout)
    return Call(
        ScriptName.BURY_SCHEDULED,
        (layout.scheduled(rk), layout.job(job_id), layout.dead(rk)),
        (job_id, record, ttl_seconds, dead_cap),
    )


def release(job: Job, token: str, record: bytes, *, layout: KeyLayout) -> Call:
    return Call(
        ScriptName.RELEASE,
        (*layout.lease_keys(route_of(job.id, layout)), layout.job(job.id), ready_queue_of(job, layout)),
        (job.id, token, record, layout.notify_channel(job.routing_key)),
    )


def drop(job_id: str, token: str, *, layout: KeyLayout) -> Call:
    """End a delivery that must not run (its record is already final); the record stays."""
    return Call(ScriptName.DROP, layout.lease_keys(route_of(job_id, layout)), (job_id, token))


def drop_if_held(job_id: str, token: str, *, layout: KeyLayout) -> Call:
    """End the delivery, unrun, if an original Go worker runs the job (see the script)."""
    rk = route_of(job_id, layout)
    return Call(ScriptName.DROP_IF_HELD, (*layout.lease_keys(rk), layout.processing(rk)), (job_id, token))


def extend(lease_ms: int, held: Sequence[tuple[str, str]], *, layout: KeyLayout) -> list[Call]:
    """Extend the leases in ``held`` to ``lease_ms`` from the server's time when it runs:
    one call per lease set (one in the standalone layout, one per routing key in the
    cluster layout)."""
    groups: dict[str, list[str | int]] = {}
    for job_id, token in held:
        groups.setdefault(route_of(job_id, layout), [lease_ms]).extend((job_id, token))
    return [
        Call(ScriptName.EXTEND, (layout.leases(rk), layout.lease_owners(rk)), tuple(args))
        for rk, args in groups.items()
    ]


def promote(job: Job, record: bytes, *, layout: KeyLayout, legacy_default: bool = False) -> Call:
    """``legacy_default`` (migration mode): a ``default`` job goes to the legacy list of
    its priority, where original Go workers can take it too."""
    queue = (
        layout.legacy_queue(job.priority)
        if legacy_default and job.routing_key == DEFAULT_ROUTING_KEY
        else ready_queue_of(job, layout)
    )
    return Call(
        ScriptName.PROMOTE,
        (layout.scheduled(route_of(job.id, layout)), queue, layout.job(job.id)),
        (job.id, record, layout.notify_channel(job.routing_key)),
    )


def recover_to_ready(job: Job, seen_token: str, now_ms: int, record: bytes, *, layout: KeyLayout) -> Call:
    rk = route_of(job.id, layout)
    return Call(
        ScriptName.RECOVER,
        (
            *layout.lease_keys(rk),
            layout.job(job.id),
            ready_queue_of(job, layout),
            layout.result(job.id),
            layout.processing(rk),
        ),
        (job.id, seen_token, now_ms, record, "ready", layout.notify_channel(job.routing_key), 0, "", 0, 0),
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
    layout: KeyLayout,
) -> Call:
    rk = route_of(job_id, layout)
    return Call(
        ScriptName.RECOVER,
        (*layout.lease_keys(rk), layout.job(job_id), layout.dead(rk), layout.result(job_id), layout.processing(rk)),
        (
            job_id,
            seen_token,
            now_ms,
            record,
            "dead",
            "",
            result_ttl if result else 0,
            layout.result_channel(job_id),
            record_ttl,
            dead_cap,
            *result,
        ),
    )


def dlq_retry(job: Job, seen_record: bytes, record: bytes, *, layout: KeyLayout) -> Call:
    """Move a dead job back to its own ready queue; ``seen_record`` guards against a
    record that changed since it was read."""
    rk = route_of(job.id, layout)
    return Call(
        ScriptName.DLQ_RETRY,
        (
            layout.dead(rk),
            layout.job(job.id),
            ready_queue_of(job, layout),
            layout.known(job.routing_key),
            layout.result(job.id),
        ),
        (job.id, seen_record, record, job.routing_key, layout.notify_channel(job.routing_key)),
    )


def dlq_purge(job_ids: Sequence[str], *, layout: KeyLayout, routing_key: str = "") -> Call:
    """Remove ``job_ids`` from the dead letters (of ``routing_key``'s slot in the cluster
    layout: every id must belong to it), with their records and results."""
    return Call(
        ScriptName.DLQ_PURGE,
        (layout.dead(routing_key), *(layout.job(i) for i in job_ids), *(layout.result(i) for i in job_ids)),
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
    layout: KeyLayout,
) -> Call:
    """Reconciler repair: put ``job_id`` in exactly one ``home`` (see rehome.lua)."""
    rk = route_of(job_id, layout)
    lists = tuple(dict.fromkeys(k for k in other_lists if k != home_queue))
    if orphan:
        # An original Go worker may have taken the id between the reconciler's reads: the
        # script's orphan check must look in its processing list too.
        held = layout.processing(rk)
        lists = (*(k for k in lists if k != held), held)
    return Call(
        ScriptName.REHOME,
        (*layout.lease_keys(rk), layout.job(job_id), layout.scheduled(rk), layout.dead(rk), home_queue, *lists),
        (job_id, seen_record_sha1, seen_owner, home, record, repr(score), channel, "1" if orphan else "0", dead_cap),
    )


def repair_inflight(*, layout: KeyLayout, routing_key: str = "") -> Call:
    """Reconciler repair: drop lease routes without a lease, recount in-flight per key
    (of ``routing_key``'s slot in the cluster layout)."""
    return Call(ScriptName.REPAIR_INFLIGHT, layout.lease_keys(routing_key), ())


#: Seconds a cancellation of a running job stays pending for its worker to see.
CANCEL_REQUEST_TTL = 24 * 3600


def cancel(
    job: Job,
    seen_record: bytes,
    record: bytes,
    result: Sequence[str | bytes],
    *,
    record_ttl: int,
    result_ttl: int,
    layout: KeyLayout,
) -> Call:
    """Cancel ``job``: out of whichever list or set holds it, or ask its worker to stop."""
    rk = route_of(job.id, layout)
    lists = [ready_queue_of(job, layout), layout.parked_queue(job.routing_key, job.priority, job.name)]
    if job.routing_key == DEFAULT_ROUTING_KEY and not layout.cluster:
        lists.append(layout.legacy_queue(job.priority))
    return Call(
        ScriptName.CANCEL,
        (
            layout.job(job.id), layout.scheduled(rk), layout.lease_owners(rk), layout.cancel_request(job.id),
            layout.result(job.id), *lists,
        ),
        (
            job.id, seen_record, record, record_ttl, CANCEL_REQUEST_TTL, keys.CANCEL_CHANNEL,
            result_ttl if result else 0, layout.result_channel(job.id), *result,
        ),
    )  # fmt: skip


def purge(
    list_key: str,
    jobs: Sequence[tuple[str, bytes, Sequence[str | bytes]]],
    *,
    record_ttl: int,
    result_ttl: int,
    layout: KeyLayout,
) -> Call:
    """Remove ``jobs`` (id, cancelled record or b"", result fields), read from
    ``list_key``'s right end, rightmost first; see purge.lua."""
    args: list[str | bytes | int] = [record_ttl, result_ttl]
    for job_id, record, fields in jobs:
        args += [job_id, record, layout.result_channel(job_id), len(fields), *fields]
    ids = [job_id for job_id, _, _ in jobs]
    return Call(
        ScriptName.PURGE, (list_key, *(layout.job(i) for i in ids), *(layout.result(i) for i in ids)), tuple(args)
    )


# -- workflows, unique jobs, progress (docs/WORKFLOWS.md) ---------------------------------


def submit_unique(job: Job, record: bytes, unique_key: str, unique_for: int, *, layout: KeyLayout) -> Call:
    """Queue ``job`` unless another job holds ``unique_key``; replies the holder's id."""
    rk = job.routing_key
    return Call(
        ScriptName.SUBMIT_UNIQUE,
        (layout.job(job.id), ready_queue_of(job, layout), layout.known(rk), layout.unique_lock(rk, unique_key)),
        (job.id, record, rk, layout.notify_channel(rk), unique_for),
    )


def submit_workflow(
    workflow_id: str,
    spec: bytes,
    ttl_seconds: int,
    first: Sequence[tuple[Job, bytes]],
    waiting: Sequence[tuple[str, bytes]],
    *,
    layout: KeyLayout,
) -> Call:
    """Store a workflow and queue its first stage (``first``); the steps of later stages
    (``waiting``) are kept in the workflow hash until their stage starts. In the cluster
    layout every step shares the workflow's routing key (one slot)."""
    keys_out: list[str] = [layout.workflow(workflow_id), layout.known(route_of(workflow_id, layout))]
    args: list[str | bytes | int] = [ttl_seconds, spec, len(waiting)]
    for step_id, record in waiting:
        args += [step_id, record]
    for job, record in first:
        keys_out += [layout.job(job.id), ready_queue_of(job, layout)]
        args += [job.id, record, job.routing_key, layout.notify_channel(job.routing_key)]
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
    layout: KeyLayout,
) -> Call:
    """End a leased job that carries hand-offs: release its unique lock, hand a workflow
    step on to the next stage (or fail its workflow). ``dead_cap`` -1: no dead letter."""
    rk = route_of(job_id, layout)
    keys_out: list[str] = [*layout.lease_keys(rk), layout.job(job_id), layout.result(job_id), layout.dead(rk)]
    if unique_key is not None:
        keys_out.append(layout.unique_lock(rk, unique_key))
    args: list[str | bytes | int] = [
        job_id, token, record, ttl_seconds, status, dead_cap, result_ttl if result else 0,
        layout.result_channel(job_id), 1 if unique_key is not None else 0,
    ]  # fmt: skip
    if step is None:
        args += [0, 0, 0, 0, 0, 0, "null", "", 0, "", "", 0]
    else:
        keys_out += [layout.workflow(step.workflow_id), layout.result(step.workflow_id), layout.known(rk)]
        args += [
            1, step.stage, step.index, step.size, 1 if step.is_group else 0, 1 if step.allow_failure else 0,
            step.result_json, step.error, step.kept_seconds, layout.result_channel(step.workflow_id),
            step.now, len(step.next),
        ]  # fmt: skip
        for next_id, routing_key, priority in step.next:
            keys_out += [layout.job(next_id), layout.queue(routing_key, priority)]
            args += [next_id, routing_key, layout.notify_channel(routing_key)]
    args.append(len(result) if result_ttl else 0)
    if result_ttl:
        args += result
    return Call(ScriptName.FINISH, tuple(keys_out), tuple(args))


def progress(
    job_id: str, token: str, fraction: float, message: str, at: str, ttl_seconds: int, *, layout: KeyLayout
) -> Call:
    return Call(
        ScriptName.PROGRESS,
        (layout.lease_owners(route_of(job_id, layout)), layout.progress(job_id)),
        (job_id, token, repr(float(fraction)), message, at, ttl_seconds, layout.progress_channel(job_id)),
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
    layout: KeyLayout,
    routing_key: str = "",
) -> Call:
    """A job ended without a worker (cancelled, or parked as a poison pill): release its
    unique key, fail its workflow; applies only if its record has ``status``."""
    record_key = layout.job(job_id)
    lock = layout.unique_lock(routing_key, unique_key) if unique_key is not None else record_key
    flow = layout.workflow(workflow_id) if workflow_id is not None else record_key
    outcome = layout.result(workflow_id) if workflow_id is not None else layout.result(job_id)
    channel = layout.result_channel(workflow_id) if workflow_id is not None else ""
    args = (
        job_id, 1 if unique_key is not None else 0, 1 if workflow_id is not None else 0, kept_seconds, channel,
        now, status, reason or f"step {job_id} {status}",
    )  # fmt: skip
    return Call(ScriptName.ABANDON, (record_key, lock, flow, outcome), args)


def abandon_job(job: Job, now: str, *, layout: KeyLayout, status: str = "cancelled", reason: str = "") -> Call | None:
    """``abandon`` for ``job`` if it carries hand-offs (a workflow, a unique key), else None."""
    link = step_link(job)
    unique_key = unique_key_of(job)
    if link is None and unique_key is None:
        return None
    workflow_id = link.workflow_id if link is not None else None
    return abandon(
        job.id,
        unique_key,
        workflow_id,
        workflow_result_ttl(job),
        now,
        status=status,
        reason=reason,
        layout=layout,
        routing_key=job.routing_key,
    )
