"""The read model of the fleet: queue statistics (``bananas queues``), live workers
(``bananas workers``), jobs in flight (``bananas running``), paused queues.

Shared by both clients, the CLI, the HTTP API and the exporter. Each read is a
*reader*: a generator that yields a batch of Redis commands, receives their replies, and
finally returns the result. ``Client`` and ``AsyncClient`` only send each batch as one
pipeline, so a read costs a fixed number of round trips whatever the number of routing
keys, lists or workers (``queue_stats``: four at most).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bananas.core import codec
from bananas.core.clock import parse_time
from bananas.core.codec import decode_id
from bananas.core.fleet import PausedQueue, RunningJob, WorkerInfo, parse_paused, worker_of_token
from bananas.core.priority import DEFAULT_PRIORITIES, Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY, QueueRef
from bananas.redis import keys
from bananas.redis.keys import KeyLayout

Command = tuple[Any, ...]
#: Yields batches of commands, receives each batch's replies, returns the result.
Reader = Generator[list[Command], list[Any], Any]

#: Records read per MGET.
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """One ready list: a routing key and priority (or the legacy list of a priority).

    ``oldest_age_seconds``: how long the next job in line has waited since it became
    ready (None when the list is empty). ``paused``: the routing key, or this priority
    of it, is paused (``bananas pause``)."""

    routing_key: str
    priority: Priority
    ready: int
    legacy: bool = False
    oldest_age_seconds: float | None = None
    paused: bool = False
    #: The list's key name (of the server's layout).
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "routing_key": self.routing_key,
            "priority": self.priority.value,
            "ready": self.ready,
            "legacy": self.legacy,
            "key": self.key,
            "oldest_age_seconds": self.oldest_age_seconds,
            "paused": self.paused,
        }


@dataclass(frozen=True, slots=True)
class ParkedDepth:
    """Jobs of one name waiting for a worker that runs it (no handler where they were
    taken, or their name is rate limited); see docs/TASK_ROUTING_USAGE.md.

    ``runnable``: some live worker on the routing key has a handler for the name (False
    means they wait until one starts)."""

    routing_key: str
    priority: Priority
    job_name: str
    waiting: int
    runnable: bool = True
    oldest_age_seconds: float | None = None
    #: The parked list's key name (of the server's layout).
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "routing_key": self.routing_key,
            "priority": self.priority.value,
            "job_name": self.job_name,
            "waiting": self.waiting,
            "key": self.key,
            "runnable": self.runnable,
            "oldest_age_seconds": self.oldest_age_seconds,
        }


@dataclass(frozen=True, slots=True)
class RouteStats:
    """One routing key across its priorities.

    ``ready``: jobs waiting on it (its lists, parked lists and, for ``default``, the
    legacy lists); ``in_flight``: its jobs running now; ``consumers``: live workers
    listening on it; ``paused``: the whole key is paused; ``orphaned``: jobs are ready
    and no live worker listens; ``oldest_age_seconds``: the longest wait among its lists."""

    routing_key: str
    ready: int
    in_flight: int
    consumers: int
    paused: bool
    orphaned: bool
    oldest_age_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "routing_key": self.routing_key,
            "ready": self.ready,
            "in_flight": self.in_flight,
            "consumers": self.consumers,
            "paused": self.paused,
            "orphaned": self.orphaned,
            "oldest_age_seconds": self.oldest_age_seconds,
        }


@dataclass(frozen=True, slots=True)
class Problem:
    """Something an operator should look at, in plain words."""

    kind: str  # orphaned | unrunnable | paused | dead
    routing_key: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "routing_key": self.routing_key, "message": self.message}


@dataclass(frozen=True, slots=True)
class QueueStats:
    queues: list[QueueDepth]
    scheduled: int
    processing: int
    dead: int
    parked: list[ParkedDepth] = field(default_factory=list)
    routes: list[RouteStats] = field(default_factory=list)
    paused: list[PausedQueue] = field(default_factory=list)
    workers: int = 0
    #: Jobs original Go workers are running (``bananas:queue:processing``, docs/MIGRATING.md).
    original_processing: int = 0

    def ready(self, routing_key: str, priority: Priority | str) -> int:
        prio = Priority.parse(priority)
        return sum(q.ready for q in self.queues if q.routing_key == routing_key and q.priority is prio)

    def route(self, routing_key: str) -> RouteStats | None:
        return next((r for r in self.routes if r.routing_key == routing_key), None)

    @property
    def problems(self) -> list[Problem]:
        """What needs attention, most serious first."""
        out: list[Problem] = []
        for r in self.routes:
            if r.orphaned:
                out.append(
                    Problem(
                        "orphaned",
                        r.routing_key,
                        f"{r.routing_key}: {_jobs(r.ready)} waiting, no worker listens on this routing key",
                    )
                )
        for p in self.parked:
            if not p.runnable:
                out.append(
                    Problem(
                        "unrunnable",
                        p.routing_key,
                        f"{p.routing_key}: {_jobs(p.waiting)} named "
                        f"{p.job_name!r} waiting, no live worker on this routing key can run them",
                    )
                )
        for q in self.paused:
            where = q.routing_key if q.priority is None else f"{q.routing_key} ({q.priority.value} priority)"
            waiting = sum(
                d.ready for d in self.queues if d.routing_key == q.routing_key and q.priority in (None, d.priority)
            )
            waiting += sum(
                p.waiting for p in self.parked if p.routing_key == q.routing_key and q.priority in (None, p.priority)
            )
            resume = f"bananas resume {q.routing_key}" + (f" --priority {q.priority.value}" if q.priority else "")
            out.append(
                Problem(
                    "paused",
                    q.routing_key,
                    f"{where}: paused, {_jobs(waiting)} waiting will not start until '{resume}'",
                )
            )
        if self.dead:
            out.append(
                Problem(
                    "dead", None, f"{_jobs(self.dead)} failed for good, in the dead letters (see 'bananas dlq list')"
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """Exactly the document ``bananas queues --json`` prints."""
        return {
            "routes": [r.to_json() for r in self.routes],
            "queues": [q.to_json() for q in self.queues],
            "scheduled": self.scheduled,
            "processing": self.processing,
            "dead": self.dead,
            "parked": [p.to_json() for p in self.parked],
            "paused": [p.to_json() for p in self.paused],
            "workers": self.workers,
            "original_processing": self.original_processing,
            "problems": [p.to_json() for p in self.problems],
        }


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


# -- readers ---------------------------------------------------------------------------
# Each takes the server's key layout. Standalone: the fleet-wide sets (leases, scheduled,
# dead letters, paused) are one key each, read as always. Cluster: they are one per
# routing key (its slot), so a reader first reads the known routing keys
# (``bananas:routing_keys``) and then every set of ``layout.slot_groups``.


def set_owners(layout: KeyLayout, routing_keys: Iterable[Any] = ()) -> list[str]:
    """The routing key to name each fleet set with: standalone one (``""``: the sets are
    fleet-wide), Cluster one per routing key in ``routing_keys`` (and ``default``)."""
    if not layout.cluster:
        return [""]
    known = sorted({decode_id(k) for k in routing_keys} | {DEFAULT_ROUTING_KEY})
    return [group[0] for group in layout.slot_groups(known)]


def read_routing_keys(layout: KeyLayout) -> Generator[list[Command], list[Any], list[str]]:
    """``set_owners`` of the server: on Cluster one round trip for the known routing keys,
    standalone none."""
    if not layout.cluster:
        return set_owners(layout)
    (members,) = yield [("SMEMBERS", keys.ROUTING_KEYS)]
    return set_owners(layout, members)


def read_workers(layout: KeyLayout = keys.STANDALONE) -> Reader:
    """Live workers (their entry has not expired), sorted by host, pid and id. ``running``
    is counted from the leases at the time of the read (the entry's own figure can be
    a beat old)."""
    if layout.cluster:
        ids, members = yield [("ZRANGE", keys.WORKERS, 0, -1), ("SMEMBERS", keys.ROUTING_KEYS)]
        owners_lists = yield [("HVALS", layout.lease_owners(k)) for k in set_owners(layout, members)]
        owners = [token for chunk in owners_lists for token in chunk]
    else:
        ids, owners = yield [("ZRANGE", keys.WORKERS, 0, -1), ("HVALS", layout.lease_owners(""))]
    found = yield from _worker_entries([decode_id(i) for i in ids])
    held = Counter(worker_of_token(decode_id(token)) for token in owners)
    return [replace(w, running=held.get(w.id, 0)) for w in found]


def _worker_entries(ids: Sequence[str]) -> Generator[list[Command], list[Any], list[WorkerInfo]]:
    if not ids:
        return []
    replies = yield [("HGETALL", keys.worker_info(i)) for i in ids]
    return _parse_workers(ids, replies)


def _parse_workers(ids: Sequence[str], replies: Sequence[Any]) -> list[WorkerInfo]:
    # An entry that expired (killed worker) is empty: the worker is gone.
    found = [WorkerInfo.from_hash(i, _mapping(h)) for i, h in zip(ids, replies, strict=True) if h]
    found.sort(key=lambda w: (w.host, w.pid, w.id))
    return found


def read_paused(layout: KeyLayout = keys.STANDALONE) -> Reader:
    owners = yield from read_routing_keys(layout)
    hashes = yield [("HGETALL", layout.paused(k)) for k in owners]
    return parse_paused(_merged(hashes))


def read_running(limit: int | None = None, layout: KeyLayout = keys.STANDALONE) -> Reader:
    """Jobs in flight (leased), oldest lease first."""
    stop = -1 if limit is None else max(0, limit) - 1
    if stop < -1 or limit == 0:
        return []
    owners = yield from read_routing_keys(layout)
    sets = yield [("ZRANGE", layout.leases(k), 0, stop, "WITHSCORES") for k in owners]
    pairs = sorted((p for reply in sets for p in _pairs(reply)), key=lambda p: p[1]) if len(sets) > 1 else _pairs(
        sets[0]
    )
    if limit is not None:
        pairs = pairs[:limit]
    ids = [decode_id(i) for i, _ in pairs]
    if not ids:
        return []
    runs = _runs(ids, layout)
    commands: list[Command] = [("HMGET", layout.lease_owners(k), *run) for k, run in runs]
    commands += _mget_records(ids, layout)
    replies = yield commands
    owners_of = _aligned(ids, layout, replies[: len(runs)])
    records = _aligned(ids, layout, replies[len(runs) :])
    out: list[RunningJob] = []
    for (job_id, (_, score)), owner, raw in zip(zip(ids, pairs, strict=True), owners_of, records, strict=True):
        fields = _record_fields(raw)
        if fields is None:
            continue
        name, routing_key, priority, attempts, status, updated = fields
        processing = status == "processing"
        out.append(
            RunningJob(
                job_id=job_id,
                name=name,
                routing_key=routing_key,
                priority=priority,
                attempt=attempts if processing else attempts + 1,
                worker_id=worker_of_token(decode_id(owner)) if owner is not None else "",
                started_at=updated if processing else None,
                lease_deadline=float(score) / 1000.0,
            )
        )
    return out


def read_queue_stats(now: float, layout: KeyLayout = keys.STANDALONE) -> Reader:
    """Everything ``bananas queues`` shows, in at most four round trips (either layout)."""
    if layout.cluster:
        # The per-routing-key sets (pause, leases) are read in round 2, with the lists.
        routing_keys, worker_ids = yield [("SMEMBERS", keys.ROUTING_KEYS), ("ZRANGE", keys.WORKERS, 0, -1)]
        paused_raw: Any = {}
        lease_ids: list[Any] = []
    else:
        routing_keys, worker_ids, paused_raw, lease_ids = yield [
            ("SMEMBERS", keys.ROUTING_KEYS),
            ("ZRANGE", keys.WORKERS, 0, -1),
            ("HGETALL", layout.paused("")),
            ("ZRANGE", layout.leases(""), 0, -1),
        ]
    workers_ids = [decode_id(i) for i in worker_ids]
    paused = parse_paused(_mapping(paused_raw))
    leased = [decode_id(i) for i in lease_ids]

    # Round 2: every list's depth and next job, counters, parked indexes, workers, and
    # the records of the jobs in flight (their routing key).
    produced = {decode_id(k) for k in routing_keys}
    plan = depth_plan(sorted(produced | {p.routing_key for p in paused}), layout)
    owners = set_owners(layout, produced)
    commands: list[Command] = []
    for key in plan.list_keys:
        commands += [("LLEN", key), ("LINDEX", key, -1)]
    for k in owners:
        commands += [("ZCARD", layout.scheduled(k)), ("ZCARD", layout.leases(k)), ("LLEN", layout.dead(k))]
    if not layout.cluster:
        commands += [("LLEN", keys.ORIGINAL_PROCESSING)]
    else:
        commands += [("HGETALL", layout.paused(k)) for k in owners]
    commands += [("SMEMBERS", layout.parked_index(k)) for k in plan.routing_keys]
    commands += [("HGETALL", keys.worker_info(i)) for i in workers_ids]
    commands += _mget_records(leased, layout)
    replies = yield commands
    n = len(plan.refs)
    depths = [int(replies[2 * i]) for i in range(n)]
    heads = [decode_id(replies[2 * i + 1]) if replies[2 * i + 1] is not None else None for i in range(n)]
    at = 2 * n
    counts = [int(v) for v in replies[at : at + 3 * len(owners)]]
    at += 3 * len(owners)
    scheduled, processing, dead = sum(counts[0::3]), sum(counts[1::3]), sum(counts[2::3])
    in_flight: Counter[str] = Counter()
    original = 0
    if layout.cluster:
        # A routing key's lease set holds its own jobs only: no record to read.
        in_flight.update({k: c for k, c in zip(owners, counts[1::3], strict=True) if c})
        paused = parse_paused(_merged(replies[at : at + len(owners)]))
        at += len(owners)
    else:
        original = int(replies[at])
        at += 1
    indexes = replies[at : at + len(plan.routing_keys)]
    at += len(plan.routing_keys)
    workers = _parse_workers(workers_ids, replies[at : at + len(workers_ids)])
    at += len(workers_ids)
    for chunk in replies[at:]:
        for raw in chunk:
            fields = _record_fields(raw)
            if fields is not None:
                in_flight[fields[1]] += 1

    # Round 3: parked lists (depth and next job) and the records of the main lists' next jobs.
    parked = _parked_candidates(plan.routing_keys, indexes, layout)
    main_heads = [h for h in heads if h is not None]
    commands = []
    for p in parked:
        commands += [("LLEN", p.key), ("LINDEX", p.key, -1)]
    commands += _mget_records(main_heads, layout)
    replies = yield commands
    parked_depths = [int(replies[2 * i]) for i in range(len(parked))]
    parked_heads = [
        decode_id(replies[2 * i + 1]) if replies[2 * i + 1] is not None else None for i in range(len(parked))
    ]
    ready_since = _ready_times(main_heads, _aligned(main_heads, layout, replies[2 * len(parked) :]))

    # Round 4 (only with parked jobs): when the parked lists' next jobs became ready.
    present = [h for h in parked_heads if h is not None]
    if present:
        ready_since.update(_ready_times(present, _aligned(present, layout, (yield _mget_records(present, layout)))))

    stats = _assemble(
        now,
        plan,
        depths,
        heads,
        parked,
        parked_depths,
        parked_heads,
        ready_since,
        scheduled,
        processing,
        dead,
        workers,
        paused,
        in_flight,
    )
    return replace(stats, original_processing=original)


def _assemble(
    now: float,
    plan: DepthPlan,
    depths: Sequence[int],
    heads: Sequence[str | None],
    parked: Sequence[ParkedDepth],
    parked_depths: Sequence[int],
    parked_heads: Sequence[str | None],
    ready_since: Mapping[str, float],
    scheduled: int,
    processing: int,
    dead: int,
    workers: Sequence[WorkerInfo],
    paused: Sequence[PausedQueue],
    in_flight: Mapping[str, int],
) -> QueueStats:
    whole = {p.routing_key for p in paused if p.priority is None}
    partly = {(p.routing_key, p.priority) for p in paused if p.priority is not None}

    def is_paused(key: str, priority: Priority) -> bool:
        return key in whole or (key, priority) in partly

    def age(head: str | None) -> float | None:
        since = ready_since.get(head) if head is not None else None
        return None if since is None else round(max(0.0, now - since), 3)

    queues = [
        QueueDepth(
            ref.routing_key,
            ref.priority,
            depth,
            ref.legacy,
            age(head) if depth else None,
            is_paused(ref.routing_key, ref.priority),
            key,
        )
        for ref, key, depth, head in zip(plan.refs, plan.list_keys, depths, heads, strict=True)
    ]
    waiting = [
        ParkedDepth(
            p.routing_key,
            p.priority,
            p.job_name,
            depth,
            any(w.can_run(p.routing_key, p.job_name) for w in workers),
            age(head),
            p.key,
        )
        for p, depth, head in zip(parked, parked_depths, parked_heads, strict=True)
        if depth > 0
    ]
    consumers: Counter[str] = Counter(k for w in workers if w.runs_jobs for k in set(w.routing_keys))
    ready: Counter[str] = Counter()
    oldest: dict[str, float] = {}
    for key, count, age_s in [(q.routing_key, q.ready, q.oldest_age_seconds) for q in queues] + [
        (p.routing_key, p.waiting, p.oldest_age_seconds) for p in waiting
    ]:
        ready[key] += count
        if age_s is not None and age_s > oldest.get(key, -1.0):
            oldest[key] = age_s
    names = sorted(set(plan.routing_keys) | set(consumers) | set(in_flight))
    routes = [
        RouteStats(
            key,
            ready[key],
            in_flight.get(key, 0),
            consumers[key],
            key in whole,
            ready[key] > 0 and consumers[key] == 0,
            oldest.get(key),
        )
        for key in names
    ]
    return QueueStats(queues, scheduled, processing, dead, waiting, routes, list(paused), len(workers))


# -- the queue plan ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DepthPlan:
    """The ready lists read: every priority of every routing key, then the legacy lists."""

    refs: list[QueueRef]
    routing_keys: list[str]
    #: The key name of each of ``refs``.
    list_keys: list[str]


def depth_plan(routing_keys: Sequence[str], layout: KeyLayout = keys.STANDALONE) -> DepthPlan:
    names = sorted(set(routing_keys) | {DEFAULT_ROUTING_KEY})
    refs = [QueueRef(k, p) for k in names for p in DEFAULT_PRIORITIES]
    if not layout.cluster:  # the original Go fleet's unrouted lists: one server only
        refs += [QueueRef(DEFAULT_ROUTING_KEY, p, legacy=True) for p in DEFAULT_PRIORITIES]
    return DepthPlan(refs, names, [layout.ref_queue(r) for r in refs])


def _parked_candidates(
    routing_keys: Sequence[str], indexes: Sequence[Any], layout: KeyLayout = keys.STANDALONE
) -> list[ParkedDepth]:
    """Parked lists named by the indexes (their depth still to be read)."""
    out: list[ParkedDepth] = []
    for key, members in zip(routing_keys, indexes, strict=True):
        for member in sorted(decode_id(m) for m in members):
            prio, _, name = member.partition(":")
            try:
                priority = Priority.parse(prio)
            except ValueError:
                continue
            out.append(ParkedDepth(key, priority, name, 0, key=layout.parked_queue(key, priority, name)))
    return out


# -- reply helpers -----------------------------------------------------------------------


def _runs(job_ids: Sequence[str], layout: KeyLayout, size: int = CHUNK) -> list[tuple[str, list[str]]]:
    """``job_ids`` cut into runs of at most ``size`` consecutive ids of one slot: one run
    per ``size`` ids standalone; on Cluster a run also ends where the routing key changes
    (a multi-key command stays in one slot). Ids that cannot exist on Cluster (no routing
    key) are left out; ``_aligned`` puts None in their place."""
    if not layout.cluster:
        return [("", list(job_ids[s : s + size])) for s in range(0, len(job_ids), size)]
    out: list[tuple[str, list[str]]] = []
    for job_id in job_ids:
        key = layout.routing_key_of(job_id)
        if key is None:
            continue
        if out and out[-1][0] == key and len(out[-1][1]) < size:
            out[-1][1].append(job_id)
        else:
            out.append((key, [job_id]))
    return out


def _mget_records(job_ids: Sequence[str], layout: KeyLayout = keys.STANDALONE) -> list[Command]:
    """MGETs of the records of ``job_ids``; ``_aligned`` reads their replies back."""
    return [("MGET", *(layout.job(i) for i in run)) for _, run in _runs(job_ids, layout)]


def _aligned(job_ids: Sequence[str], layout: KeyLayout, chunks: Iterable[Any]) -> list[Any]:
    """The replies of ``_runs``' commands, one value per id of ``job_ids`` (None for an id
    left out)."""
    values = iter([v for chunk in chunks for v in chunk])
    if not layout.cluster:
        return list(values)
    return [next(values) if layout.routing_key_of(i) is not None else None for i in job_ids]


#: For other readers of records (the dead letters): the commands and their replies.
record_reads = _mget_records
records_of = _aligned


def _merged(hashes: Iterable[Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for data in hashes:
        out.update(_mapping(data))
    return out


def read_records(job_ids: Sequence[str], layout: KeyLayout) -> Generator[list[Command], list[Any], list[Any]]:
    """The records of ``job_ids`` (None where there is none), in one round trip."""
    if not job_ids:
        return []
    replies = yield _mget_records(job_ids, layout)
    return _aligned(job_ids, layout, replies)


def _ready_times(job_ids: Sequence[str], records: Sequence[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for job_id, raw in zip(job_ids, records, strict=True):
        fields = _record_fields(raw)
        if fields is not None and fields[5] is not None:
            out[job_id] = fields[5]
    return out


def _record_fields(raw: Any) -> tuple[str, str, str, int, str, float | None] | None:
    """(name, routing key, priority, attempts, status, updated_at) of a record, or None."""
    if raw is None:
        return None
    try:
        data = codec.loads(raw)
    except codec.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    name = data.get("name")
    key = data.get("routing_key") or DEFAULT_ROUTING_KEY
    attempts = data.get("attempts")
    try:
        updated = parse_time(data.get("updated_at"))
    except ValueError:
        updated = None
    return (
        name if isinstance(name, str) else "",
        key if isinstance(key, str) else DEFAULT_ROUTING_KEY,
        str(data.get("priority") or Priority.NORMAL.value),
        attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0,
        str(data.get("status") or ""),
        updated.timestamp() if updated is not None else None,
    )


def _mapping(value: Any) -> dict[Any, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list | tuple):  # a flat field/value reply
        return dict(zip(value[::2], value[1::2], strict=True))
    return {}


def _pairs(value: Any) -> list[tuple[Any, float]]:
    """ZRANGE ... WITHSCORES as (member, score), from a flat (RESP2) or nested (RESP3) reply."""
    if not value:
        return []
    if isinstance(value[0], list | tuple):
        return [(m, float(s)) for m, s in value]
    return [(value[i], float(value[i + 1])) for i in range(0, len(value), 2)]
