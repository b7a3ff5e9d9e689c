"""Every Redis key and channel name Bananas uses. Nothing else formats one.

The ready-queue layout ``bananas:route:{routing_key}:queue:{priority}`` is a public
contract shared with clients in other languages (docs/WIRE_FORMAT.md).
"""

from __future__ import annotations

from bananas.core.priority import Priority
from bananas.core.routing import QueueRef

PREFIX = "bananas"


def job(job_id: str) -> str:
    """JSON record of one job."""
    return f"{PREFIX}:job:{job_id}"


def route_queue(routing_key: str, priority: Priority | str) -> str:
    """Ready list of one routing key and priority (LPUSH by producers, RPOP by workers)."""
    return f"{PREFIX}:route:{routing_key}:queue:{Priority.parse(priority).value}"


def legacy_queue(priority: Priority | str) -> str:
    """Ready list written by producers that predate routing; drained as ``default``."""
    return f"{PREFIX}:queue:{Priority.parse(priority).value}"


def queue(ref: QueueRef) -> str:
    return legacy_queue(ref.priority) if ref.legacy else route_queue(ref.routing_key, ref.priority)


#: Sorted set of scheduled jobs and retries: member job id, score due time (Unix seconds).
SCHEDULED = f"{PREFIX}:queue:scheduled"
#: Dead letter list of job ids (newest on the left).
DEAD = f"{PREFIX}:queue:dead"
#: List the ORIGINAL Go workers keep the jobs they run in (BRPOPLPUSH from the legacy
#: lists; no lease, no heartbeat). Read only: ours never re-queue an id found here.
ORIGINAL_PROCESSING = f"{PREFIX}:queue:processing"
#: Sorted set of leased (in-flight) job ids, score = lease deadline in Unix milliseconds.
LEASES = f"{PREFIX}:leases"
#: Hash job id -> lease token of the delivery that holds the lease.
LEASE_OWNERS = f"{PREFIX}:lease:owners"
#: Hash job id -> routing key, for leases counted against a fleet-wide concurrency limit.
LEASE_ROUTES = f"{PREFIX}:lease:routes"
#: Hash routing key -> jobs in flight, kept for routing keys with a concurrency limit.
ROUTE_INFLIGHT = f"{PREFIX}:limits:inflight"
#: Hash of fleet-wide limits (``bananas limits``): ``route:{key}:concurrency`` -> n,
#: ``route:{key}:rate`` and ``job:{name}:rate`` -> "count/period_seconds".
LIMITS = f"{PREFIX}:limits"
#: Set of routing keys ever used by a producer (for ``bananas queues``).
ROUTING_KEYS = f"{PREFIX}:routing_keys"
#: Sorted set of live workers, score = last heartbeat (Unix seconds).
WORKERS = f"{PREFIX}:workers"


def worker_info(worker_id: str) -> str:
    """Hash describing one worker (core/fleet.py ``worker_hash``); expires 2 x its lease
    length after its last heartbeat."""
    return f"{PREFIX}:worker:{worker_id}"


#: Hash of paused queues (``bananas pause``): field ``{routing_key}`` (every priority) or
#: ``{routing_key}:{priority}``, value the time it was paused (Unix seconds). The dequeue
#: script takes nothing from a paused list.
PAUSED = f"{PREFIX}:paused"


def paused_field(routing_key: str, priority: Priority | str | None = None) -> str:
    """Field of ``PAUSED`` for a routing key, or one priority of it."""
    return routing_key if priority is None else f"{routing_key}:{Priority.parse(priority).value}"


def result(job_id: str) -> str:
    """Hash with a finished job's outcome: status, result or error, timings, worker."""
    return f"{PREFIX}:result:{job_id}"


def route_rate(routing_key: str) -> str:
    """Rate-limit state (GCRA theoretical arrival time, ms) of one routing key."""
    return f"{PREFIX}:limits:rate:route:{routing_key}"


def job_rate(job_name: str) -> str:
    """Rate-limit state (GCRA theoretical arrival time, ms) of one job name."""
    return f"{PREFIX}:limits:rate:job:{job_name}"


def parked_queue(routing_key: str, priority: Priority | str, job_name: str) -> str:
    """Ready list of one job name within a routing key and priority. Jobs wait here when
    the worker that took them has no handler for them or their name is rate limited;
    workers that can run the name take from it before the main list."""
    return f"{PREFIX}:route:{routing_key}:queue:{Priority.parse(priority).value}:job:{job_name}"


def parked_index(routing_key: str) -> str:
    """Set of ``{priority}:{job name}`` whose parked list of ``routing_key`` may hold jobs."""
    return f"{PREFIX}:route:{routing_key}:parked"


def parked_member(priority: Priority | str, job_name: str) -> str:
    return f"{Priority.parse(priority).value}:{job_name}"


# Pub/Sub channels are not keys, but their names are part of the contract too.


def route_notify_channel(routing_key: str) -> str:
    """Published to when a job becomes ready on ``routing_key``: wakes idle workers."""
    return f"{PREFIX}:route:{routing_key}:notify"


#: Published to when a job is scheduled, so promoters re-check their next due time.
SCHEDULED_NOTIFY_CHANNEL = f"{PREFIX}:queue:scheduled:notify"


def result_notify_channel(job_id: str) -> str:
    """Published to (with the final status) when a job's result is stored."""
    return f"{PREFIX}:result:notify:{job_id}"


#: Published to (message: the job id) when an operator cancels a job that is running;
#: the worker holding it stops it (docs/OPERATIONS.md).
CANCEL_CHANNEL = f"{PREFIX}:cancel"


def cancel_request(job_id: str) -> str:
    """Set (with a TTL) while a cancellation of a running job is pending; workers look
    for it once a second too, in case they missed the message on ``CANCEL_CHANNEL``."""
    return f"{PREFIX}:cancel:{job_id}"


#: Held (SET NX PX) by the worker doing the periodic reconciliation, so one worker per
#: interval checks the bookkeeping for the whole fleet.
RECONCILE_LOCK = f"{PREFIX}:reconcile:lock"


# -- periodic schedules (``bananas scheduler``, docs/PERIODIC_TASKS.md) ----------------

#: Sorted set of periodic schedule ids, score = next run (Unix seconds; +inf if none).
SCHEDULES = f"{PREFIX}:schedules"


def schedule(schedule_id: str) -> str:
    """Hash of one periodic schedule: its cursor (every tick at or before it is decided),
    definition, last and next run, run count and last error."""
    return f"{PREFIX}:schedule:{schedule_id}"


# -- workflows, unique jobs, progress (docs/WORKFLOWS.md) ---------------------------------


def workflow(workflow_id: str) -> str:
    """Hash of one workflow (chain, group, chord): ``spec`` (its stages and step ids),
    ``state``, ``record:<step id>`` (pre-built records of steps not queued yet),
    ``done:<stage>:<index>`` (a finished step's result JSON) and ``count:<stage>``.
    Its outcome is stored like a job's, in ``result(workflow_id)``."""
    return f"{PREFIX}:workflow:{workflow_id}"


def unique_lock(unique_key: str) -> str:
    """String holding the id of the job that owns ``unique_key`` (``submit_job(...,
    unique_key=)``); set with NX and a TTL, deleted when that job ends."""
    return f"{PREFIX}:unique:{unique_key}"


def progress(job_id: str) -> str:
    """Hash of a running job's last reported progress: ``fraction``, ``message``, ``at``."""
    return f"{PREFIX}:progress:{job_id}"


def progress_notify_channel(job_id: str) -> str:
    """Published to (message: the fraction) when a job's progress is stored; result
    waiters given ``on_progress`` listen to it."""
    return f"{PREFIX}:progress:notify:{job_id}"
