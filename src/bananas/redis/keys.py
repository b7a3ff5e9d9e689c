"""Every Redis key and channel name Bananas uses. Nothing else formats one.

Two layouts, one object each (docs/WIRE_FORMAT.md, docs/adr/0001-cluster-key-layout.md):

- ``STANDALONE`` (``KeyLayout``): the seed's names, byte for byte. The ready list
  ``bananas:route:<routing_key>:queue:<priority>`` is a public contract shared with
  clients in other languages; a single server, or a Sentinel-managed master, uses it.
- ``CLUSTER`` (``ClusterLayout``): "slot = routing key". Every key one job's transition
  touches carries its routing key as a hash tag, ``bananas:route:{<routing_key>}:...``,
  so each script runs in one slot; job ids carry their routing key
  (``<routing_key>~<uuid>``) so a record is found from its id alone.

Code receives a layout (from its URL, ``layout_for_url``) and asks it for names; nothing
else knows which layout is in use. Fleet-wide keys (the routing-key and worker indexes,
limits, periodic schedules) are the same in both and are module constants below: they
are never touched inside a transition's script, only beside it.
"""

from __future__ import annotations

from bananas.core.job import new_job_id as _new_uuid
from bananas.core.priority import Priority
from bananas.core.routing import QueueRef

PREFIX = "bananas"

#: Separates the routing key from the random part of a job id in the cluster layout.
#: Routing keys are ``[A-Za-z0-9_-]{1,64}`` (core/routing.py): never a ``~``.
ID_ROUTE_SEPARATOR = "~"


class KeyLayout:
    """The standalone layout: one keyspace, fleet-wide lease, schedule and dead-letter
    sets. Its names are the wire contract of docs/WIRE_FORMAT.md and never change."""

    cluster = False

    # -- per routing key ----------------------------------------------------------------

    def queue(self, routing_key: str, priority: Priority | str) -> str:
        """Ready list of one routing key and priority (LPUSH by producers, RPOP by workers)."""
        return f"{PREFIX}:route:{routing_key}:queue:{Priority.parse(priority).value}"

    def legacy_queue(self, priority: Priority | str) -> str:
        """Ready list written by producers that predate routing; drained as ``default``."""
        return f"{PREFIX}:queue:{Priority.parse(priority).value}"

    def ref_queue(self, ref: QueueRef) -> str:
        return self.legacy_queue(ref.priority) if ref.legacy else self.queue(ref.routing_key, ref.priority)

    def parked_queue(self, routing_key: str, priority: Priority | str, job_name: str) -> str:
        """Ready list of one job name within a routing key and priority. Jobs wait here
        when the worker that took them has no handler for them or their name is rate
        limited; workers that can run the name take from it before the main list."""
        return f"{self._route(routing_key)}:queue:{Priority.parse(priority).value}:job:{job_name}"

    def parked_index(self, routing_key: str) -> str:
        """Set of ``<priority>:<job name>`` whose parked list of ``routing_key`` may hold jobs."""
        return f"{self._route(routing_key)}:parked"

    def notify_channel(self, routing_key: str) -> str:
        """Published to when a job becomes ready on ``routing_key``: wakes idle workers."""
        return f"{self._route(routing_key)}:notify"

    def leases(self, routing_key: str) -> str:
        """Sorted set of leased (in-flight) job ids, score = lease deadline (Unix ms)."""
        return f"{PREFIX}:leases"

    def lease_owners(self, routing_key: str) -> str:
        """Hash job id -> lease token of the delivery that holds the lease."""
        return f"{PREFIX}:lease:owners"

    def lease_routes(self, routing_key: str) -> str:
        """Hash job id -> routing key, for leases counted against a fleet concurrency limit."""
        return f"{PREFIX}:lease:routes"

    def inflight(self, routing_key: str) -> str:
        """Hash routing key -> jobs in flight, for routing keys with a concurrency limit."""
        return f"{PREFIX}:limits:inflight"

    def lease_keys(self, routing_key: str) -> tuple[str, str, str, str]:
        """The bookkeeping of a lease: every script that ends one takes these first."""
        return (
            self.leases(routing_key),
            self.lease_owners(routing_key),
            self.lease_routes(routing_key),
            self.inflight(routing_key),
        )

    def scheduled(self, routing_key: str) -> str:
        """Sorted set of scheduled jobs and retries: member job id, score due time (Unix s)."""
        return f"{PREFIX}:queue:scheduled"

    def dead(self, routing_key: str) -> str:
        """Dead letter list of job ids (newest on the left)."""
        return f"{PREFIX}:queue:dead"

    def paused(self, routing_key: str) -> str:
        """Hash of paused queues (``bananas pause``): field ``<routing_key>`` (every
        priority) or ``<routing_key>:<priority>``, value when it was paused (Unix s).
        The dequeue script takes nothing from a paused list."""
        return f"{PREFIX}:paused"

    def route_rate(self, routing_key: str) -> str:
        """Rate-limit state (GCRA theoretical arrival time, ms) of one routing key."""
        return f"{PREFIX}:limits:rate:route:{routing_key}"

    def job_rate(self, routing_key: str, job_name: str) -> str:
        """Rate-limit state (GCRA, ms) of one job name: fleet-wide in this layout."""
        return f"{PREFIX}:limits:rate:job:{job_name}"

    def unique_lock(self, routing_key: str, unique_key: str) -> str:
        """String holding the id of the job that owns ``unique_key`` (set NX with a TTL,
        deleted when that job ends). Fleet-wide in this layout."""
        return f"{PREFIX}:unique:{unique_key}"

    def known(self, routing_key: str) -> str:
        """The routing-key registry as a script sees it: the scripts that queue a job add
        its routing key here. Standalone: the fleet-wide ``ROUTING_KEYS`` itself."""
        return ROUTING_KEYS

    def processing(self, routing_key: str) -> str:
        """List the ORIGINAL Go workers keep the jobs they run in (BRPOPLPUSH from the
        legacy lists; no lease, no heartbeat). Read only: ours never re-queue an id found
        here."""
        return ORIGINAL_PROCESSING

    def slot_groups(self, routing_keys: list[str] | tuple[str, ...]) -> list[tuple[str, ...]]:
        """``routing_keys`` grouped by the fleet sets they share (leases, scheduled, dead
        letters...): a loop over "every lease set" visits one member of each group.
        Standalone: one group holding them all."""
        keys_ = tuple(dict.fromkeys(routing_keys))
        return [keys_] if keys_ else []

    # -- per job (found from its id alone) ----------------------------------------------

    def job(self, job_id: str) -> str:
        """JSON record of one job."""
        return f"{PREFIX}:job:{job_id}"

    def result(self, job_id: str) -> str:
        """Hash with a finished job's outcome: status, result or error, timings, worker."""
        return f"{PREFIX}:result:{job_id}"

    def result_channel(self, job_id: str) -> str:
        """Published to (with the final status) when a job's result is stored."""
        return f"{PREFIX}:result:notify:{job_id}"

    def progress(self, job_id: str) -> str:
        """Hash of a running job's last reported progress: ``fraction``, ``message``, ``at``."""
        return f"{PREFIX}:progress:{job_id}"

    def progress_channel(self, job_id: str) -> str:
        """Published to (message: the fraction) when a job's progress is stored."""
        return f"{PREFIX}:progress:notify:{job_id}"

    def cancel_request(self, job_id: str) -> str:
        """Set (with a TTL) while a cancellation of a running job is pending; workers look
        for it once a second too, in case they missed the message on ``CANCEL_CHANNEL``."""
        return f"{PREFIX}:cancel:{job_id}"

    def workflow(self, workflow_id: str) -> str:
        """Hash of one workflow (chain, group, chord): ``spec``, ``state``,
        ``record:<step id>``, ``done:<stage>:<index>``, ``count:<stage>``. Its outcome is
        stored like a job's, in ``result(workflow_id)``."""
        return f"{PREFIX}:workflow:{workflow_id}"

    def schedule_index(self, schedule_id: str) -> str:
        """The schedule index as the periodic scripts write it (their KEYS[2]).
        Standalone: the fleet-wide ``SCHEDULES`` itself."""
        return SCHEDULES

    def job_prefix(self, routing_key: str) -> str:
        """What ``job(id)`` puts before the id, for a job of ``routing_key`` (scripts that
        read the records of ids they popped build the name from it)."""
        return f"{PREFIX}:job:"

    def new_job_id(self, routing_key: str) -> str:
        """A fresh id for a job of ``routing_key``. Standalone: a version 4 UUID."""
        return _new_uuid()

    def new_workflow_id(self, routing_key: str) -> str:
        """A fresh workflow id; ``routing_key`` is that of its first step."""
        return _new_uuid()

    def routing_key_of(self, job_id: str) -> str | None:
        """The routing key an id carries (cluster layout), else None."""
        return None

    def _route(self, routing_key: str) -> str:
        return f"{PREFIX}:route:{routing_key}"


class ClusterLayout(KeyLayout):
    """ "Slot = routing key": everything a job's transition touches lives in the slot of
    its routing key, ``bananas:route:{<routing_key>}:...`` (the seed's own pattern with
    the braces read as a Redis Cluster hash tag). A brace in a job name or id cannot move
    a key to another slot: Redis hashes the first ``{...}`` of a key, and names and ids
    only ever follow the routing key's tag."""

    cluster = True

    def leases(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:leases"

    def lease_owners(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:lease:owners"

    def lease_routes(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:lease:routes"

    def inflight(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:limits:inflight"

    def queue(self, routing_key: str, priority: Priority | str) -> str:
        return f"{self._route(routing_key)}:queue:{Priority.parse(priority).value}"

    def legacy_queue(self, priority: Priority | str) -> str:
        # The original Go fleet runs on one server; its unrouted lists have no slot here.
        raise ValueError("the legacy unrouted lists (bananas:queue:<priority>) do not exist on Redis Cluster")

    def scheduled(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:scheduled"

    def dead(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:dead"

    def paused(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:paused"

    def route_rate(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:limits:rate"

    def job_rate(self, routing_key: str, job_name: str) -> str:
        # Scoped per routing key: a fleet-wide gate would be a second slot (ADR 0001).
        return f"{self._route(routing_key)}:limits:rate:job:{job_name}"

    def unique_lock(self, routing_key: str, unique_key: str) -> str:
        return f"{self._route(routing_key)}:unique:{unique_key}"

    def known(self, routing_key: str) -> str:
        # Slot-local stand-in: the fleet-wide ROUTING_KEYS is another slot, so the client
        # adds the routing key to it itself, idempotently, beside the script.
        return f"{self._route(routing_key)}:known"

    def processing(self, routing_key: str) -> str:
        # Never written: the original Go workers do not run on Cluster.
        return f"{self._route(routing_key)}:processing"

    def slot_groups(self, routing_keys: list[str] | tuple[str, ...]) -> list[tuple[str, ...]]:
        return [(key,) for key in dict.fromkeys(routing_keys)]

    def job(self, job_id: str) -> str:
        return f"{self._of(job_id)}:job:{job_id}"

    def result(self, job_id: str) -> str:
        return f"{self._of(job_id)}:result:{job_id}"

    def result_channel(self, job_id: str) -> str:
        return f"{self._of(job_id)}:result:notify:{job_id}"

    def progress(self, job_id: str) -> str:
        return f"{self._of(job_id)}:progress:{job_id}"

    def progress_channel(self, job_id: str) -> str:
        return f"{self._of(job_id)}:progress:notify:{job_id}"

    def cancel_request(self, job_id: str) -> str:
        return f"{self._of(job_id)}:cancel:{job_id}"

    def workflow(self, workflow_id: str) -> str:
        return f"{self._of(workflow_id)}:workflow:{workflow_id}"

    def schedule_index(self, schedule_id: str) -> str:
        # The schedule's state and the fleet-wide index are two slots and a script runs in
        # one: the scripts write a one-member stand-in in the state's slot (its hash tag
        # is the state's whole name, brace-free: schedule ids are [A-Za-z0-9_.-]), and
        # the scheduler copies the entry to SCHEDULES beside them (ZADD, idempotent).
        return f"{SCHEDULES}:{{{schedule(schedule_id)}}}"

    def job_prefix(self, routing_key: str) -> str:
        return f"{self._route(routing_key)}:job:"

    def new_job_id(self, routing_key: str) -> str:
        return f"{routing_key}{ID_ROUTE_SEPARATOR}{_new_uuid()}"

    def new_workflow_id(self, routing_key: str) -> str:
        return f"{routing_key}{ID_ROUTE_SEPARATOR}{_new_uuid()}"

    def routing_key_of(self, job_id: str) -> str | None:
        key, sep, rest = job_id.partition(ID_ROUTE_SEPARATOR)
        return key if sep and key and rest else None

    def _route(self, routing_key: str) -> str:
        return f"{PREFIX}:route:{{{routing_key}}}"

    def _of(self, job_id: str) -> str:
        key = self.routing_key_of(job_id)
        if key is None:
            raise ValueError(f"job id {job_id!r} carries no routing key: ids on Redis Cluster are <routing_key>~<uuid>")
        return self._route(key)


STANDALONE = KeyLayout()
CLUSTER = ClusterLayout()

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def layout_for_url(url: str) -> KeyLayout:
    """The layout a ``REDIS_URL`` implies: the cluster layout for ``redis+cluster://``
    and ``rediss+cluster://``, the standalone one for every other scheme."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    return CLUSTER if scheme in CLUSTER_SCHEMES else STANDALONE


# -- fleet-wide keys: the same in both layouts ------------------------------------------

#: List the original Go workers keep the jobs they run in (standalone only; see
#: ``KeyLayout.processing``).
ORIGINAL_PROCESSING = f"{PREFIX}:queue:processing"
#: Hash of fleet-wide limits (``bananas limits``): ``route:<key>:concurrency`` -> n,
#: ``route:<key>:rate`` and ``job:<name>:rate`` -> "count/period_seconds".
LIMITS = f"{PREFIX}:limits"
#: Set of routing keys ever used by a producer (for ``bananas queues``).
ROUTING_KEYS = f"{PREFIX}:routing_keys"
#: Sorted set of live workers, score = last heartbeat (Unix seconds).
WORKERS = f"{PREFIX}:workers"


def worker_info(worker_id: str) -> str:
    """Hash describing one worker (core/fleet.py ``worker_hash``); expires 2 x its lease
    length after its last heartbeat."""
    return f"{PREFIX}:worker:{worker_id}"


def paused_field(routing_key: str, priority: Priority | str | None = None) -> str:
    """Field of a ``paused`` hash for a routing key, or one priority of it."""
    return routing_key if priority is None else f"{routing_key}:{Priority.parse(priority).value}"


def parked_member(priority: Priority | str, job_name: str) -> str:
    return f"{Priority.parse(priority).value}:{job_name}"


#: Published to when a job is scheduled, so promoters re-check their next due time.
SCHEDULED_NOTIFY_CHANNEL = f"{PREFIX}:queue:scheduled:notify"

#: Published to (message: the job id) when an operator cancels a job that is running;
#: the worker holding it stops it (docs/OPERATIONS.md).
CANCEL_CHANNEL = f"{PREFIX}:cancel"

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


# -- throughput history (the dashboard's charts) ----------------------------------------


def throughput(minute: int) -> str:
    """Hash routing key -> jobs that ended (succeeded or went dead) in that minute
    (``minute`` = Unix seconds // 60). Workers add to it; it expires after an hour."""
    return f"{PREFIX}:throughput:{minute}"


# -- the standalone layout's names as module functions ----------------------------------
# Kept for tests and tools that inspect a standalone server; product code asks its layout
# (tests/unit/test_key_layout.py keeps src/ from calling these).

SCHEDULED = STANDALONE.scheduled("")
DEAD = STANDALONE.dead("")
LEASES = STANDALONE.leases("")
LEASE_OWNERS = STANDALONE.lease_owners("")
LEASE_ROUTES = STANDALONE.lease_routes("")
ROUTE_INFLIGHT = STANDALONE.inflight("")
PAUSED = STANDALONE.paused("")
job = STANDALONE.job
result = STANDALONE.result
route_queue = STANDALONE.queue
legacy_queue = STANDALONE.legacy_queue
queue = STANDALONE.ref_queue
parked_queue = STANDALONE.parked_queue
parked_index = STANDALONE.parked_index
route_notify_channel = STANDALONE.notify_channel
result_notify_channel = STANDALONE.result_channel
progress = STANDALONE.progress
progress_notify_channel = STANDALONE.progress_channel
cancel_request = STANDALONE.cancel_request
workflow = STANDALONE.workflow
route_rate = STANDALONE.route_rate


def job_rate(job_name: str) -> str:
    return STANDALONE.job_rate("", job_name)


def unique_lock(unique_key: str) -> str:
    return STANDALONE.unique_lock("", unique_key)
