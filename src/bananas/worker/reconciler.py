"""Finds and repairs broken bookkeeping, so a job is never stranded by a state that the
normal scripts cannot produce (a bug, a partial write by a foreign client, a hand edit,
a restore from an old backup).

Every Bananas script keeps these invariants (docs/RELIABILITY.md):

- a job id is in at most one place: one ready list (main, per-name "parked", or legacy),
  the scheduled set, the dead letters, or leased (an entry in ``bananas:leases`` *and*
  its owner in ``bananas:lease:owners``);
- a leased or scheduled id has a record;
- a job whose record says pending, processing or scheduled is somewhere (else no worker
  will ever see it: an orphan);
- a fleet concurrency slot (``bananas:lease:routes``) belongs to a lease, and each
  routing key's in-flight count equals its number of slots.

The reconciler reads where every id is in one MULTI/EXEC (an atomic picture: a job moving
while we read is never mistaken for a job in two places), decides each break from the
record's status, and repairs it with the ``rehome`` script, which puts the id back in
exactly one place only if neither the record (compared by SHA1) nor the lease owner
changed since the picture was taken. Slots and counts are repaired by
``repair_inflight``. A repair never deletes a job: at worst a job whose record is gone is
parked in the dead letters with a stand-in record that says so.

Cost of a pass: O(leases + ready and dead list entries + scheduled entries) for the
picture, bounded by ``ReconcileLimits`` (a check whose input is above its limit is
skipped and reported), plus the orphan search: SCAN over ``bananas:job:*``, at most
``records_per_pass`` keys per pass; the periodic loop keeps its SCAN cursor between
passes, so it sweeps the whole keyspace over several passes at a bounded cost each.
Only records last updated more than ``orphan_min_age`` seconds ago are orphan
candidates, so a foreign producer that writes the record and pushes the id in two steps
is never caught in between. Ready lists are those of the routing keys in
``bananas:routing_keys`` (every producer registers its key) plus ``default``.

Jobs an original Go worker holds (its list ``bananas:queue:processing``: no lease, no
heartbeat) are never repaired: their records say ``processing`` and they are in no list
of ours, but they are running. They are counted in the report (``original_processing``).

Every worker runs the loop (every ``interval`` seconds, default 60); a lock key lets one
worker per interval do the pass for the whole fleet. ``bananas reconcile`` runs one full
pass on demand (``--dry-run`` to only look).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field

from bananas.aio import raise_if_cancelling
from bananas.core.clock import Clock, to_datetime
from bananas.core.codec import decode_id, display_id
from bananas.core.job import Job, JobStatus
from bananas.core.lifecycle import mark_pending
from bananas.core.priority import Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY
from bananas.errors import MalformedJobError
from bananas.redis import calls, keys
from bananas.redis.backoff import is_connection_error, loop_log_level
from bananas.redis.broker import Broker
from bananas.redis.inventory import Inventory
from bananas.redis.scripts import Call
from bananas.worker.malformed import stub_record

log = logging.getLogger("bananas.reconciler")

#: Seconds between passes of the worker's loop.
DEFAULT_INTERVAL = 60.0

# Kinds of broken state (the ``kind`` of a ``Repair``).
LEASE_WITHOUT_OWNER = "lease_without_owner"
OWNER_WITHOUT_LEASE = "owner_without_lease"
LEASE_WITHOUT_RECORD = "lease_without_record"
LEASED_AND_QUEUED = "leased_and_queued"
DUPLICATE_PLACEMENT = "duplicate_placement"
SCHEDULED_WITHOUT_RECORD = "scheduled_without_record"
ORPHAN = "orphan"
ROUTE_WITHOUT_LEASE = "route_without_lease"
INFLIGHT_DRIFT = "inflight_count_drift"

_CHUNK = 1000
_LIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.SCHEDULED})


@dataclass(frozen=True, slots=True)
class ReconcileLimits:
    #: Most ready-list plus dead-letter entries read in one pass.
    max_list_entries: int = 100_000
    #: Most scheduled entries read in one pass.
    max_scheduled: int = 100_000
    #: Most leases (and lease owners) read in one pass.
    max_leases: int = 100_000
    #: Most keys SCAN visits (looking for job records) in one pass of the periodic loop.
    records_per_pass: int = 10_000
    #: A pending/processing/scheduled record is an orphan candidate only when it was last
    #: updated longer ago than this (seconds).
    orphan_min_age: float = 300.0


@dataclass(frozen=True, slots=True)
class Repair:
    kind: str
    job_id: str
    #: Where the job was put: ready, scheduled, dead, leased (lease kept), none.
    home: str
    detail: str
    #: False in a dry run, or when the job changed before the repair could be applied.
    applied: bool = False

    def describe(self) -> str:
        verb = "repaired" if self.applied else "found"
        return f"{verb} {self.kind} job={display_id(self.job_id)} -> {self.home}: {self.detail}"


@dataclass(slots=True)
class ReconcileReport:
    repairs: list[Repair] = field(default_factory=list)
    #: Repairs planned but not applied because the job changed meanwhile (looked at again
    #: on the next pass).
    raced: int = 0
    #: Checks not made in this pass, with the reason (a limit was exceeded).
    skipped: list[str] = field(default_factory=list)
    leases: int = 0
    list_entries: int = 0
    scheduled: int = 0
    records_scanned: int = 0
    #: True when the orphan SCAN reached the end of the keyspace in this pass.
    sweep_complete: bool = False
    #: Ids in ``bananas:queue:processing`` (held by original Go workers), left alone.
    original_processing: int = 0

    @property
    def applied(self) -> int:
        return sum(1 for r in self.repairs if r.applied)

    def summary(self) -> str:
        return (
            f"reconcile: leases={self.leases} list_entries={self.list_entries} scheduled={self.scheduled} "
            f"records_scanned={self.records_scanned} found={len(self.repairs)} repaired={self.applied} "
            f"raced={self.raced} skipped={len(self.skipped)}"
            + (f" original_processing={self.original_processing}" if self.original_processing else "")
        )


@dataclass(slots=True)
class _View:
    """Where one id was seen in the snapshot."""

    lease: int | None = None  # deadline, Unix ms
    owner: str | None = None
    lists: list[str] = field(default_factory=list)  # ready lists, one entry per copy
    dead: int = 0
    scheduled: float | None = None

    @property
    def placements(self) -> int:
        return len(self.lists) + self.dead + (0 if self.scheduled is None else 1)


@dataclass(frozen=True, slots=True)
class _Home:
    """Where a repair puts a job (see rehome.lua) and what it writes."""

    home: str
    record: bytes = b""
    score: float = 0
    channel: str = ""
    queue: str | None = None
    extra: tuple[str, ...] = ()
    why: str = ""


@dataclass(slots=True)
class _Snapshot:
    views: dict[str, _View] = field(default_factory=lambda: defaultdict(_View))
    lists_complete: bool = False
    scheduled_complete: bool = False
    leases_complete: bool = False


class Reconciler:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        *,
        lease_seconds: float,
        interval: float = DEFAULT_INTERVAL,
        limits: ReconcileLimits | None = None,
        owner: str = "",
        dead_letter_cap: int = 0,
    ) -> None:
        self._dead_cap = dead_letter_cap
        self._broker = broker
        self._clock = clock
        self._lease_ms = int(lease_seconds * 1000)
        self.interval = interval
        self.limits = limits or ReconcileLimits()
        self._lock_owner = owner or "reconciler"
        self._cursor = 0
        self._inventory = Inventory(broker.redis, broker.layout)
        #: Cluster: the routing keys whose slots this pass pictured (see _reconcile_slots).
        self._pictured: set[str] | None = None

    # -- one pass ----------------------------------------------------------------------

    async def reconcile_once(self, *, dry_run: bool = False, full_sweep: bool = False) -> ReconcileReport:
        """Look for broken states and repair them (unless ``dry_run``).

        ``full_sweep`` scans every job record for orphans in this pass (the one-shot
        command); otherwise at most ``records_per_pass`` keys are visited, resuming where
        the previous pass stopped.
        """
        if self._broker.layout.cluster:
            return await self._reconcile_slots(dry_run=dry_run, full_sweep=full_sweep)
        return await self._reconcile_pass(ReconcileReport(), dry_run=dry_run, full_sweep=full_sweep, orphans=True)

    async def _reconcile_slots(self, *, dry_run: bool, full_sweep: bool) -> ReconcileReport:
        """Redis Cluster: one pass per routing key's slot (every known routing key), each
        with its own atomic picture; then the orphan search over every master, against
        the pictures of all those slots (a record of a routing key nobody registered has
        no picture and is left alone)."""
        report = ReconcileReport()
        fleet = self._inventory
        merged = _Snapshot(lists_complete=True, scheduled_complete=True, leases_complete=True)
        pictured: set[str] = set()
        try:
            for group in await self._broker.slot_groups(()):
                self._inventory = Inventory(self._broker.redis, self._broker.layout, group[0])
                await self._reconcile_pass(
                    report, dry_run=dry_run, full_sweep=False, orphans=False, rk=group[0], merged=merged
                )
                pictured.add(group[0])
        finally:
            self._inventory = fleet
        self._pictured = pictured
        try:
            plans = await self._orphans(merged, report, self._clock.now(), full_sweep, set())
        finally:
            self._pictured = None
        await self._apply(report, plans, dry_run)
        return report

    async def _reconcile_pass(
        self,
        report: ReconcileReport,
        *,
        dry_run: bool,
        full_sweep: bool,
        orphans: bool,
        rk: str = "",
        merged: _Snapshot | None = None,
    ) -> ReconcileReport:
        now = self._clock.now()
        sizes_before = (report.leases, report.list_entries, report.scheduled)
        snap = await self._snapshot(report)
        report.leases += sizes_before[0]
        report.list_entries += sizes_before[1]
        report.scheduled += sizes_before[2]
        if merged is not None:
            merged.views.update(snap.views)
            merged.lists_complete &= snap.lists_complete
            merged.scheduled_complete &= snap.scheduled_complete
            merged.leases_complete &= snap.leases_complete
        suspects = self._suspects(snap)
        missing_scheduled = await self._scheduled_without_record(snap)
        suspects.update(missing_scheduled)
        # Read after the picture: an id an original worker took meanwhile is left alone too.
        held = await self._inventory.held_by_original()
        report.original_processing = len(held)
        suspects -= held
        plans: list[tuple[Repair, Call]] = []
        ids = sorted(suspects)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            raws = await self._broker.records(chunk)
            for job_id, raw in zip(chunk, raws, strict=True):
                plan = await self._plan_one(report, job_id, raw, snap.views[job_id], now, orphan=False)
                if plan is not None:
                    plans.append(plan)
        if orphans:
            plans.extend(await self._orphans(snap, report, now, full_sweep, held))
        if dry_run:
            report.repairs.extend(repair for repair, _ in plans)
            note = "fleet concurrency counts: repaired in place, so not checked in a dry run"
            if note not in report.skipped:
                report.skipped.append(note)
            return report
        report.repairs.extend(await self._repair_inflight(rk))
        await self._apply(report, plans, dry_run)
        return report

    async def _apply(self, report: ReconcileReport, plans: list[tuple[Repair, Call]], dry_run: bool) -> None:
        if dry_run:
            report.repairs.extend(repair for repair, _ in plans)
            return
        for start in range(0, len(plans), _CHUNK):
            chunk_plans = plans[start : start + _CHUNK]
            replies = await self._broker.run_many([call for _, call in chunk_plans])
            for (repair, _), reply in zip(chunk_plans, replies, strict=True):
                if isinstance(reply, Exception):
                    report.skipped.append(f"job {repair.job_id!r}: repair failed ({reply})")
                elif reply == 1:
                    report.repairs.append(_applied(repair))
                else:
                    report.raced += 1

    async def _plan_one(
        self, report: ReconcileReport, job_id: str, raw: bytes | None, view: _View, now: float, *, orphan: bool
    ) -> tuple[Repair, Call] | None:
        """``_plan``, except that one job this version cannot judge is reported and skipped
        instead of stopping the pass for every other job."""
        try:
            return await self._plan(job_id, raw, view, now, orphan=orphan)
        except Exception as exc:
            if is_connection_error(exc):
                raise
            report.skipped.append(f"job {job_id!r}: could not be checked ({exc})")
            return None

    async def _repair_inflight(self, rk: str = "") -> list[Repair]:
        reply = await self._broker.run(calls.repair_inflight(layout=self._broker.layout, routing_key=rk))
        items = [decode_id(v) for v in reply]
        out: list[Repair] = []
        i = 0
        while i < len(items):
            if items[i] == "route":
                job_id, route = items[i + 1], items[i + 2]
                detail = f"a fleet concurrency slot of routing key {route!r} held without a lease; given back"
                out.append(Repair(ROUTE_WITHOUT_LEASE, job_id, "none", detail, applied=True))
                i += 3
            else:
                route, old, new = items[i + 1], items[i + 2], items[i + 3]
                detail = f"routing key {route!r} counted {old} jobs in flight, its leases say {new}; corrected"
                out.append(Repair(INFLIGHT_DRIFT, "-", "none", detail, applied=True))
                i += 4
        return out

    # -- reading -----------------------------------------------------------------------

    async def _snapshot(self, report: ReconcileReport) -> _Snapshot:
        """Where every id is, from one atomic picture (see ``Inventory.picture``)."""
        snap = _Snapshot()
        lim = self.limits
        queues = await self._inventory.ready_lists()
        sizes = await self._inventory.sizes(queues)
        report.leases = sizes.leases
        report.list_entries = sizes.list_entries
        report.scheduled = sizes.scheduled
        snap.leases_complete = max(sizes.leases, sizes.owners) <= lim.max_leases
        snap.lists_complete = sizes.list_entries <= lim.max_list_entries
        snap.scheduled_complete = sizes.scheduled <= lim.max_scheduled
        if not snap.leases_complete:
            report.skipped.append(f"leases: {max(sizes.leases, sizes.owners)} above the limit of {lim.max_leases}")
        if not snap.lists_complete:
            report.skipped.append(
                f"ready and dead lists: {sizes.list_entries} entries above the limit of {lim.max_list_entries}"
            )
        if not snap.scheduled_complete:
            report.skipped.append(f"scheduled: {sizes.scheduled} entries above the limit of {lim.max_scheduled}")
        # Only non-empty lists go into the picture.
        present = [q for q in queues if sizes.lists.get(q)]
        pic = await self._inventory.picture(
            present,
            with_leases=snap.leases_complete,
            with_lists=snap.lists_complete,
            with_scheduled=snap.scheduled_complete,
        )
        views = snap.views
        for job_id, deadline in pic.leases.items():
            views[job_id].lease = deadline
        for job_id, token in pic.owners.items():
            views[job_id].owner = token
        for queue, members in pic.lists.items():
            for job_id in members:
                views[job_id].lists.append(queue)
        for job_id in pic.dead:
            views[job_id].dead += 1
        for job_id, due in pic.scheduled.items():
            views[job_id].scheduled = due
        return snap

    @staticmethod
    def _suspects(snap: _Snapshot) -> set[str]:
        """Ids whose snapshot alone shows a break (records are read afterwards)."""
        out: set[str] = set()
        for job_id, view in snap.views.items():
            leased = view.lease is not None or view.owner is not None
            if leased or view.placements >= 2:
                out.add(job_id)
        return out

    async def _scheduled_without_record(self, snap: _Snapshot) -> set[str]:
        ids = [i for i, v in snap.views.items() if v.scheduled is not None]
        return await self._inventory.missing_records(ids)

    async def _orphans(
        self, snap: _Snapshot, report: ReconcileReport, now: float, full_sweep: bool, held: set[str]
    ) -> list[tuple[Repair, Call]]:
        if not (snap.lists_complete and snap.scheduled_complete and snap.leases_complete):
            report.skipped.append("orphans: not looked for, because a snapshot above was incomplete")
            return []
        # SCAN walks every key (MATCH filters afterwards), so the budget counts SCAN steps
        # of _CHUNK keys, not job records found.
        steps = None if full_sweep else max(1, self.limits.records_per_pass // _CHUNK)
        cursor = 0 if full_sweep else self._cursor
        plans: list[tuple[Repair, Call]] = []
        visited = 0
        while True:
            cursor, ids = await self._inventory.scan_job_ids(cursor, _CHUNK)
            visited += len(ids)
            if steps is not None:
                steps -= 1
            if ids:
                raws = await self._broker.records(ids)
                for job_id, raw in zip(ids, raws, strict=True):
                    if self._pictured is not None and self._broker.layout.routing_key_of(job_id) not in self._pictured:
                        continue  # Cluster: a slot not pictured in this pass
                    view = snap.views.get(job_id) or _View()
                    if raw is None or view.placements or view.lease is not None or view.owner is not None:
                        continue
                    if job_id in held:
                        continue  # an original Go worker runs it
                    if not self._old_live_record(raw, job_id, now):
                        continue
                    plan = await self._plan_one(report, job_id, raw, view, now, orphan=True)
                    if plan is not None:
                        plans.append(plan)
            if cursor == 0:
                report.sweep_complete = True
                break
            if steps is not None and steps <= 0:
                break
        if not full_sweep:
            self._cursor = int(cursor)
        report.records_scanned = visited
        return plans

    def _old_live_record(self, raw: bytes, job_id: str, now: float) -> bool:
        try:
            job = Job.from_record(raw, job_id=job_id)
        except MalformedJobError:
            return False  # unreadable records are for the bad-input tooling, not orphans
        if job.status not in _LIVE_STATUSES:
            return False
        return now - job.updated_at.timestamp() >= self.limits.orphan_min_age

    # -- deciding ----------------------------------------------------------------------

    async def _plan(
        self, job_id: str, raw: bytes | None, view: _View, now: float, *, orphan: bool
    ) -> tuple[Repair, Call] | None:
        now_ms = int(now * 1000)
        seen_sha = hashlib.sha1(raw).hexdigest() if raw is not None else ""
        if view.owner is not None:
            if view.lease is None:
                return self._keep_lease(
                    OWNER_WITHOUT_LEASE,
                    job_id,
                    view,
                    seen_sha,
                    now_ms + self._lease_ms,
                    "a lease owner without a lease deadline, which no recoverer would ever take back; "
                    "deadline restored, so its holder keeps it or the recoverer returns it",
                )
            if raw is None and (view.lease <= now_ms or not await self._holder_alive(view.owner)):
                stub = stub_record(job_id, "record missing (found leased by a worker that is gone)", None, now)
                home = _Home("dead", stub, why="record missing, holder gone; parked with a stand-in record")
                return self._rehome(LEASE_WITHOUT_RECORD, job_id, view, "", home, seen_owner=view.owner)
            if view.placements:
                detail = f"leased and also in {self._places(job_id, view)}; the other copies were removed"
                return self._keep_lease(LEASED_AND_QUEUED, job_id, view, seen_sha, view.lease, detail)
            return None
        if view.lease is not None:
            home = self._home(job_id, raw, view, now)
            what = "a lease nobody owns (no heartbeat or ack can clear it)"
            return self._rehome(LEASE_WITHOUT_OWNER, job_id, view, seen_sha, home, what=what)
        if raw is None:
            if view.scheduled is None and view.placements < 2:
                return None  # a lone ready id without a record: the worker parks it when it gets there
            kind = SCHEDULED_WITHOUT_RECORD if view.scheduled is not None else DUPLICATE_PLACEMENT
            stub = stub_record(job_id, f"record missing (found in {self._places(job_id, view)})", None, now)
            home = _Home("dead", stub, why="record missing; parked with a stand-in record")
            return self._rehome(kind, job_id, view, "", home, what=f"in {self._places(job_id, view)}")
        if orphan:
            home = self._home(job_id, raw, view, now)
            return self._rehome(ORPHAN, job_id, view, seen_sha, home, orphan=True, what="in no queue, set or lease")
        if view.placements >= 2:
            home = self._home(job_id, raw, view, now)
            return self._rehome(
                DUPLICATE_PLACEMENT, job_id, view, seen_sha, home, what=f"in {self._places(job_id, view)}"
            )
        return None

    def _places(self, job_id: str, view: _View) -> str:
        layout = self._broker.layout
        rk = calls.route_of(job_id, layout)
        parts: list[str] = [*view.lists]
        parts += [layout.dead(rk)] * view.dead
        if view.scheduled is not None:
            parts.append(layout.scheduled(rk))
        return ", ".join(parts) or "nowhere"

    def _home(self, job_id: str, raw: bytes | None, view: _View, now: float) -> _Home:
        """Where the record's status says the job belongs."""
        if raw is None:
            return _Home("dead", stub_record(job_id, "record missing", None, now), why="record missing; parked")
        try:
            job = Job.from_record(raw, job_id=job_id)
        except MalformedJobError as exc:
            stub = stub_record(job_id, exc.reason, raw, now)
            return _Home("dead", stub, why=f"record unreadable ({exc.reason}); parked")
        layout = self._broker.layout
        queue = calls.ready_queue_of(job, layout)
        # A job may also sit in the list of its name (parked) and, on ``default``, in the
        # legacy list of its priority: look there too.
        extra: tuple[str, ...] = (layout.parked_queue(job.routing_key, job.priority, job.name),)
        if job.routing_key == DEFAULT_ROUTING_KEY and not layout.cluster:
            extra += (layout.legacy_queue(job.priority),)
        status = job.status
        if status in (JobStatus.PENDING, JobStatus.PROCESSING):
            record = b""
            why = "back in its ready queue, once"
            if status is JobStatus.PROCESSING:
                mark_pending(job, to_datetime(now))
                record = job.to_record()
                why = "was processing with no lease; " + why
            channel = layout.notify_channel(job.routing_key)
            return _Home("ready", record, channel=channel, queue=queue, extra=extra, why=why)
        if status is JobStatus.SCHEDULED:
            due = view.scheduled
            if due is None:
                due = job.scheduled_for.timestamp() if job.scheduled_for is not None else now
            return _Home(
                "scheduled",
                score=due,
                channel=keys.SCHEDULED_NOTIFY_CHANNEL,
                queue=queue,
                extra=extra,
                why="back in the scheduled set, once",
            )
        if status is JobStatus.FAILED:
            return _Home("dead", queue=queue, extra=extra, why="failed: kept in the dead letters only")
        return _Home("none", queue=queue, extra=extra, why="completed: removed from every queue")

    def _keep_lease(
        self, kind: str, job_id: str, view: _View, seen_sha: str, deadline_ms: int, detail: str
    ) -> tuple[Repair, Call]:
        home = _Home("leased", score=deadline_ms, why=detail)
        return self._rehome(kind, job_id, view, seen_sha, home, seen_owner=view.owner or "")

    def _rehome(
        self,
        kind: str,
        job_id: str,
        view: _View,
        seen_sha: str,
        home: _Home,
        *,
        seen_owner: str = "",
        orphan: bool = False,
        what: str = "",
    ) -> tuple[Repair, Call]:
        others = [*view.lists, *home.extra]
        home_queue = home.queue or (
            others[0] if others else self._broker.layout.queue(DEFAULT_ROUTING_KEY, Priority.NORMAL)
        )
        call = calls.rehome(
            job_id,
            home.home,
            home_queue=home_queue,
            other_lists=others,
            seen_record_sha1=seen_sha,
            seen_owner=seen_owner,
            record=home.record,
            score=home.score,
            channel=home.channel,
            orphan=orphan,
            dead_cap=self._dead_cap,
            layout=self._broker.layout,
        )
        detail = f"{what}; {home.why}" if what else home.why
        return Repair(kind, job_id, home.home, detail), call

    async def _holder_alive(self, token: str) -> bool:
        """Whether the worker named in a lease token still announces itself."""
        worker_id, sep, _seq = token.rpartition(":")
        if not sep or not worker_id:
            return True  # not a token this version writes: rely on the lease deadline
        return await self._inventory.worker_alive(worker_id)

    # -- the loop ----------------------------------------------------------------------

    async def _acquire(self) -> bool:
        ttl_ms = max(1000, int(self.interval * 900))
        return await self._inventory.try_lock(self._lock_owner, ttl_ms)

    async def run(self) -> None:
        """Every ``interval`` seconds, one pass by one worker of the fleet."""
        await asyncio.sleep(random.uniform(0.2, 1.0) * min(self.interval, 10.0))
        while True:
            raise_if_cancelling()
            try:
                if await self._acquire():
                    report = await self.reconcile_once()
                    for repair in report.repairs:
                        log.warning("%s", repair.describe())
                    for reason in report.skipped:
                        log.info("reconcile skipped a check: %s", reason)
                    if report.repairs or report.raced:
                        log.warning("%s", report.summary())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = loop_log_level(exc)
                log.log(level, "reconciliation failed: %s", exc)
            await asyncio.sleep(self.interval)


def _applied(repair: Repair) -> Repair:
    return Repair(repair.kind, repair.job_id, repair.home, repair.detail, applied=True)


async def reconcile(
    broker: Broker,
    clock: Clock,
    *,
    lease_seconds: float,
    limits: ReconcileLimits | None = None,
    dry_run: bool = False,
    dead_letter_cap: int = 0,
) -> ReconcileReport:
    """One full pass (every record scanned for orphans), as ``bananas reconcile`` runs it."""
    reconciler = Reconciler(broker, clock, lease_seconds=lease_seconds, limits=limits, dead_letter_cap=dead_letter_cap)
    return await reconciler.reconcile_once(dry_run=dry_run, full_sweep=True)
