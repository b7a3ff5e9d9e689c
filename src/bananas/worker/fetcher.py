"""Decides what the worker asks for on each dequeue, and asks.

Holds the slowly changing inputs of the plan (fleet limits, which job names are parked
on the worker's routing keys, which lists are overdue under the starvation guard) and
refreshes them about once a second, off the hot path. The plan is rebuilt only when
one of them changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from bananas.aio import raise_if_cancelling, wait_event
from bananas.config import QueueSelection, WorkerMode, WorkerSettings
from bananas.core.clock import Clock
from bananas.core.codec import display_id
from bananas.core.job import Job
from bananas.core.limits import FleetLimits
from bananas.core.priority import Priority
from bananas.core.routing import QueueRef
from bananas.core.selection import DequeuePlan, Source, WeightedRoundRobin, base_order, boost, with_parked
from bananas.errors import MalformedJobError
from bananas.redis import calls
from bananas.redis.backoff import loop_log_level
from bananas.redis.broker import Broker, KeyLook

log = logging.getLogger("bananas.worker")

#: Seconds between refreshes of limits, parked names and the starvation guard.
REFRESH_INTERVAL = 1.0
#: Seconds between looks at every list, woken or not (covers producers that do not
#: publish wake-ups, such as pre-routing clients). The look is one pre-encoded round trip
#: (``Broker.existing``) that names the few non-empty lists; their routing keys join the
#: active ones.
FULL_SCAN_INTERVAL = 1.0
#: More active routing keys than this (every key is woken when the wake-up listener
#: (re)subscribes): look at every list first, at most every LOOK_FIRST_INTERVAL seconds,
#: rather than dequeue over all of them.
LOOK_FIRST = 64
LOOK_FIRST_INTERVAL = 0.25
#: Seconds between clean-ups of parked lists that have emptied.
PRUNE_INTERVAL = 30.0


class Fetcher:
    def __init__(
        self,
        broker: Broker,
        settings: WorkerSettings,
        handled: frozenset[str] | None,
        clock: Clock,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """``handled``: job names this worker runs (None: whatever it has handlers for).
        ``on_change`` is called when a refresh changed the plan (new limits, parked names)."""
        self._on_change = on_change
        self._refresh_now = asyncio.Event()
        self._refreshed = False
        self._broker = broker
        self._settings = settings
        self._handled = handled
        self._clock = clock
        # The legacy unrouted lists exist on one server only (not in the cluster layout).
        legacy = settings.mode is not WorkerMode.SPECIALIZED and not broker.layout.cluster
        self._order = base_order(settings.routing_keys, settings.priorities, settings.queue_selection, legacy=legacy)
        self._index_order()
        self.limits = FleetLimits()
        self._parked: dict[tuple[str, Priority], list[str]] = {}
        self._overdue: set[QueueRef] = set()
        self._plan: DequeuePlan | None = None
        #: Redis Cluster: the plan of each routing key on its own (one slot per call).
        self._slot_plans: dict[tuple[str, Priority | None], DequeuePlan] = {}
        self._next_refresh = 0.0
        self._next_prune = 0.0
        self._route_cap = dict(settings.route_concurrency)
        self._all_routes = frozenset(settings.routing_keys)
        # Routing keys that may hold jobs: a wake-up adds one, a dequeue that found all
        # of a key's lists empty removes it. Between full scans only these are looked
        # at, so the cost of a dequeue follows the busy keys, not every key listened to.
        self._active: set[str] = set(self._all_routes)
        self._wakeups = 0
        self._woken_at: dict[str, int] = {}
        self._next_full_scan = 0.0
        self._last_look = 0.0
        self._plan_routes: frozenset[str] | None = None
        # The full look's script call and the routing key of each of its lists, built
        # once per plan (a worker may listen on 10,000 routing keys, 30,000 lists).
        self._look: tuple[KeyLook, list[str]] | None = None
        self._lease_ms = int(settings.lease_seconds * 1000)
        self._last_shape: tuple[tuple[object, ...], calls.DequeueShape] | None = None
        self._wrr: WeightedRoundRobin | None = None
        if settings.queue_selection is QueueSelection.WEIGHTED:
            weights = dict(settings.route_weights)
            self._wrr = WeightedRoundRobin({k: weights.get(k, 1) for k in settings.routing_keys})

    def _index_order(self) -> None:
        """Each list's place in the order, and the lists of each routing key."""
        self._position = {ref: n for n, ref in enumerate(self._order)}
        self._refs_of: dict[str, list[QueueRef]] = {}
        for ref in self._order:
            self._refs_of.setdefault(ref.routing_key, []).append(ref)

    @property
    def queue_order(self) -> list[QueueRef]:
        return list(self._order)

    def override_order(self, order: Sequence[QueueRef]) -> None:
        """Use an explicit list order (embedding and tests)."""
        self._order = list(order)
        self._index_order()
        self._plan = None
        self._slot_plans.clear()
        self._look = None

    def route_woken(self, routing_key: str) -> None:
        """A job became ready on ``routing_key`` (its wake-up channel said so)."""
        self._wakeups += 1
        self._woken_at[routing_key] = self._wakeups
        self._active.add(routing_key)

    def parked_changed(self) -> None:
        """A job was parked on one of our routing keys: refresh the plan now."""
        self._next_refresh = 0.0
        self._refresh_now.set()

    async def run(self) -> None:
        """Refresh the plan's slow inputs in the background, off the fetch path, so a
        pick-up never waits for it: about once a second, and at once when asked."""
        while True:
            raise_if_cancelling()
            await wait_event(self._refresh_now, REFRESH_INTERVAL)
            self._refresh_now.clear()
            try:
                changed = await self.refresh_if_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = loop_log_level(exc)
                log.log(level, "refreshing limits and parked lists failed: %s", exc)
                continue
            if changed and self._on_change is not None:
                self._on_change()

    @property
    def plan(self) -> DequeuePlan:
        """The plan over every list (see ``_plan_for`` for the one actually used)."""
        return self._plan_for(self._all_routes)

    def _plan_for(self, routes: frozenset[str]) -> DequeuePlan:
        if self._plan is None or self._plan_routes != routes:
            if len(routes) * 8 < len(self._order):
                # A few active keys out of thousands: pick their lists, keep the order.
                picked = [ref for key in routes for ref in self._refs_of.get(key, ())]
                order = sorted(picked, key=self._position.__getitem__)
            else:
                order = [ref for ref in self._order if ref.routing_key in routes]
            sources = boost(with_parked(order, self._parked), self._overdue)
            self._plan = DequeuePlan.build(sources, self.limits)
            self._plan_routes = routes
        return self._plan

    def _forget_empty(
        self,
        plan: DequeuePlan,
        taken: Sequence[tuple[int, str, bytes | None]],
        free: int,
        wakeups_before: int,
        *,
        weighted: bool,
    ) -> None:
        """Deactivate the routing keys this dequeue saw empty. A short dequeue saw every
        list empty; a strict walk also saw empty every list before the first one that
        gave a job. Keys woken since we asked stay active: their new job may have landed
        after the look."""
        if len(taken) < free:
            seen_empty_before = len(plan.sources)
        elif weighted or not taken:
            return
        else:
            seen_empty_before = min(index for index, _, _ in taken)
        for key, last in zip(plan.groups, plan.group_last, strict=True):
            if last < seen_empty_before and self._woken_at.get(key, 0) <= wakeups_before:
                self._active.discard(key)

    def _unlimited(self, plan: DequeuePlan) -> bool:
        """No cap, fleet limit or rate applies: a short dequeue means every list was empty."""
        lim = self.limits
        return not plan.gates and not any(
            k in self._route_cap or k in lim.route_concurrency or k in lim.route_rate for k in plan.groups
        )

    async def refresh_if_due(self) -> bool:
        """Re-read limits, parked names and overdue lists if due; True if the plan changed."""
        now = self._clock.now()
        if now < self._next_refresh:
            return False
        self._next_refresh = now + REFRESH_INTERVAL
        self._refreshed = True
        raw_limits, parked_sets = await self._broker.limits_and_parked(self._settings.routing_keys)
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL
            await self._prune(parked_sets)
        limits = FleetLimits.from_hash(raw_limits)
        parked = self._parked_for_us(parked_sets)
        overdue = await self._find_overdue(now, parked, limits) if self._settings.max_wait else set()
        if limits != self.limits or parked != self._parked or overdue != self._overdue:
            self.limits, self._parked, self._overdue = limits, parked, overdue
            self._plan = None
            self._slot_plans.clear()
            self._look = None
            # A list new to the plan (a parked name, an opened limit) may hold jobs that a
            # dequeue on the old plan could not see: look at every list again, now.
            self._next_full_scan = 0.0
            return True
        return False

    async def _prune(self, parked_sets: Sequence[set[str]]) -> None:
        batch = [
            calls.prune_parked(key, sorted(members), layout=self._broker.layout)
            for key, members in zip(self._settings.routing_keys, parked_sets, strict=True)
            if members
        ]
        if batch:
            await self._broker.run_many(batch)

    def _parked_for_us(self, parked_sets: Sequence[set[str]]) -> dict[tuple[str, Priority], list[str]]:
        parked: dict[tuple[str, Priority], list[str]] = {}
        for key, members in zip(self._settings.routing_keys, parked_sets, strict=True):
            for member in sorted(members):
                prio_text, _, name = member.partition(":")
                if self._handled is not None and name not in self._handled:
                    continue
                try:
                    priority = Priority.parse(prio_text)
                except ValueError:
                    continue
                parked.setdefault((key, priority), []).append(name)
        return parked

    async def _find_overdue(
        self, now: float, parked: Mapping[tuple[str, Priority], Sequence[str]], fleet: FleetLimits
    ) -> set[QueueRef]:
        limits = dict(self._settings.max_wait)
        targets = [ref for ref in self._order if ref.routing_key in limits or ref.priority.value in limits]
        # A parked job waits in its name's list, not the main one: look there too (but not
        # at rate-limited names, whose jobs wait for their rate, not for a free worker).
        layout = self._broker.layout
        lists = [(ref, layout.ref_queue(ref)) for ref in targets]
        lists += [
            (ref, layout.parked_queue(ref.routing_key, ref.priority, name))
            for ref in targets
            if not ref.legacy
            for name in parked.get((ref.routing_key, ref.priority), ())
            if name not in fleet.job_rate
        ]
        records = await self._broker.oldest_ready([key for _, key in lists])
        overdue: set[QueueRef] = set()
        for (ref, _), raw in zip(lists, records, strict=True):
            if raw is None:
                continue
            try:
                ready_since = Job.from_record(raw).updated_at.timestamp()
            except (MalformedJobError, ValueError):
                continue
            limit = min(limits.get(ref.routing_key, float("inf")), limits.get(ref.priority.value, float("inf")))
            if now - ready_since > limit:
                overdue.add(ref)
        return overdue

    async def _look_at_every_list(self) -> None:
        """Activate the routing keys that have a non-empty list, woken or not."""
        if self._look is None:
            sources = with_parked([ref for ref in self._order if ref.routing_key in self._all_routes], self._parked)
            layout = self._broker.layout
            self._look = (
                KeyLook([calls.source_key(s, layout) for s in sources], by_slot=layout.cluster),
                [s.ref.routing_key for s in sources],
            )
        look, routes = self._look
        wakeups_before = self._wakeups
        found = {routes[index] for index in await self._broker.existing(look)}
        # Keep the keys that hold something, and those woken since we asked (their job
        # may have landed after the look); the others were seen empty.
        self._active = found | {key for key in self._active if self._woken_at.get(key, 0) > wakeups_before}

    async def fetch(
        self, free: int, running_by_route: Mapping[str, int], token: str
    ) -> tuple[float, list[tuple[Source, str, bytes | None]]]:
        """Lease up to ``free`` jobs. Returns (seconds until a rate limit opens, jobs as
        (source, id, record); the record is None if the id has none)."""
        if not self._refreshed:
            # The first dequeue must already obey the fleet's limits; later refreshes
            # happen in ``run``, off this path.
            await self.refresh_if_due()
        now = self._clock.now()
        many_woken = len(self._active) > LOOK_FIRST and now >= self._last_look + LOOK_FIRST_INTERVAL
        if now >= self._next_full_scan or many_woken:
            self._next_full_scan = now + FULL_SCAN_INTERVAL
            self._last_look = now
            await self._look_at_every_list()
        routes = frozenset(self._active)
        if not routes:
            return 0.0, []
        if self._broker.layout.cluster:
            return await self._fetch_by_slot(routes, free, running_by_route, token)
        plan = self._plan_for(routes)
        wakeups_before = self._wakeups
        caps = [
            max(0, self._route_cap[key] - running_by_route.get(key, 0)) if key in self._route_cap else -1
            for key in plan.groups
        ]
        prefs: list[int] = []
        if self._wrr is not None:
            prefs = [plan.groups.index(k) + 1 for k in self._wrr.take(free) if k in plan.groups]
        call = self._shape(plan, caps, prefs).call(self._lease_ms, token, free)
        wait_ms, taken, dropped = await self._broker.dequeue(call)
        for index, job_id in dropped:
            log.warning(
                "job %s dropped from %s: it is already leased by another delivery (a duplicate entry; not run twice)",
                display_id(job_id),
                calls.source_key(plan.sources[index], self._broker.layout),
            )
        if self._unlimited(plan):
            self._forget_empty(plan, taken, free, wakeups_before, weighted=bool(prefs))
        return wait_ms / 1000.0, [(plan.sources[index], job_id, raw) for index, job_id, raw in taken]

    def _shape(self, plan: DequeuePlan, caps: list[int], prefs: list[int]) -> calls.DequeueShape:
        """The dequeue call's keys and fixed arguments, rebuilt only when the plan, the
        limits, the caps or the weighted draw differ from the last fetch's."""
        inputs = (plan, self.limits, caps, prefs)
        cached = self._last_shape
        if cached is not None and all(a is b or a == b for a, b in zip(cached[0], inputs, strict=True)):
            return cached[1]
        shape = calls.DequeueShape.of(plan, self.limits, caps, prefs, layout=self._broker.layout)
        self._last_shape = (inputs, shape)
        return shape

    async def _fetch_by_slot(
        self, routes: frozenset[str], free: int, running_by_route: Mapping[str, int], token: str
    ) -> tuple[float, list[tuple[Source, str, bytes | None]]]:
        """``fetch`` on Redis Cluster: a dequeue script runs in one slot, one routing key,
        so the worker asks its active routing keys one call each, in its own order (the
        weighted draw first with weighted selection), until its free slots are filled.
        Within a key the script walks the priorities and applies the key's limits as on
        one server; across keys the order is the order of the calls (ADR 0001)."""
        layout = self._broker.layout
        order = list(dict.fromkeys(ref.routing_key for ref in self._order if ref.routing_key in routes))
        # (routing key, how many to ask it for (None: every slot still free), the one
        # priority to ask it for (None: all of its lists, in the worker's order)).
        visits: list[tuple[str, int | None, Priority | None]] = [(key, None, None) for key in order]
        if self._wrr is not None:
            # Weighted: each key is first asked for the slots the draw gave it; slots a
            # key could not fill go to the others in order.
            drawn = [k for k in self._wrr.take(free) if k in routes]
            visits = [(key, drawn.count(key), None) for key in dict.fromkeys(drawn)] + visits
        elif self._settings.queue_selection is QueueSelection.PRIORITY_FIRST:
            # Priority first: every key's high list before any key's normal one, one call
            # per key and priority (only keys known to hold jobs are asked).
            visits = [(key, None, prio) for prio in self._settings.priorities for key in order]
        taken: list[tuple[Source, str, bytes | None]] = []
        wait_ms = 0.0
        wakeups_before = self._wakeups
        emptied: set[tuple[str, Priority | None]] = set()
        seen_empty: dict[str, int] = {}
        for key, share, prio in visits:
            left = free - len(taken)
            if left <= 0:
                break
            if (key, prio) in emptied:
                continue
            count = left if share is None else min(share, left)
            plan = self._slot_plans.get((key, prio))
            if plan is None:
                plan = self._slot_plans[key, prio] = self._plan_alone(key, prio)
            if not plan.sources:
                seen_empty[key] = seen_empty.get(key, 0) + 1
                continue
            caps = [
                max(0, self._route_cap[k] - running_by_route.get(k, 0)) if k in self._route_cap else -1
                for k in plan.groups
            ]
            call = calls.dequeue(
                plan,
                self.limits,
                caps,
                lease_ms=self._lease_ms,
                token=token,
                count=count,
                layout=layout,
            )
            waits, got, dropped = await self._broker.dequeue(call)
            for index, job_id in dropped:
                log.warning(
                    "job %s dropped from %s: it is already leased by another delivery (a duplicate entry; "
                    "not run twice)",
                    display_id(job_id),
                    calls.source_key(plan.sources[index], layout),
                )
            if waits > 0:
                wait_ms = waits if wait_ms == 0 else min(wait_ms, waits)
            if len(got) < count:
                emptied.add((key, prio))
                if self._unlimited(plan) and not got:
                    seen_empty[key] = seen_empty.get(key, 0) + 1
            if prio is None and self._unlimited(plan):
                self._forget_empty(plan, got, count, wakeups_before, weighted=False)
            taken += [(plan.sources[index], job_id, raw) for index, job_id, raw in got]
        if self._settings.queue_selection is QueueSelection.PRIORITY_FIRST and self._wrr is None:
            # A key every priority of which answered empty (no limit held it back) is empty.
            tiers = len(self._settings.priorities)
            for key, empty in seen_empty.items():
                if empty >= tiers and self._woken_at.get(key, 0) <= wakeups_before:
                    self._active.discard(key)
        return wait_ms / 1000.0, taken

    def _plan_alone(self, routing_key: str, priority: Priority | None = None) -> DequeuePlan:
        """The plan over the lists of one routing key (its parked lists included), or of
        one of its priorities."""
        order = [ref for ref in self._refs_of.get(routing_key, ()) if priority is None or ref.priority is priority]
        return DequeuePlan.build(boost(with_parked(order, self._parked), self._overdue), self.limits)
