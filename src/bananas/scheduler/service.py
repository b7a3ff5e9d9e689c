"""The scheduler service: enqueues the ticks of periodic schedules, and promotes due
scheduled jobs (the worker's ``Promoter``), so one process covers all timed work.

Run as many schedulers as you like for availability. They do not elect a leader and
hold no lock: each one computes the next step of every schedule from the schedule's
cursor and applies it with a compare-and-set script that also enqueues the job. The
first scheduler to apply a step wins; the others learn the new cursor from the reply
and move on. A tick is therefore enqueued exactly once, whatever the number of
schedulers, their clocks' small differences, or a crash at any point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Sequence

import redis.asyncio as aioredis

from bananas.aio import wait_event
from bananas.client.core import layout_of_client
from bananas.config import DEFAULT_DEAD_LETTER_CAP, DEFAULT_FAILED_TTL
from bananas.core.clock import Clock, ServerClock, to_datetime
from bananas.core.compat import ORIGINAL
from bananas.errors import ConfigurationError, ValidationError
from bananas.redis import clock_sync, connection, eviction, keys
from bananas.redis.backoff import Backoff, is_connection_error
from bananas.redis.broker import Broker
from bananas.redis.connection import DEFAULT_REDIS_URL
from bananas.scheduler.definition import Schedule
from bananas.scheduler.policy import Action, Step, first_cursor, next_step
from bananas.scheduler.store import FireResult, Outcome, ScheduleStore
from bananas.worker.promoter import Promoter, promoter_compat
from bananas.worker.wakeup import WakeupListener

log = logging.getLogger("bananas.scheduler")

#: Longest sleep between looks at the schedules (they are due at known times; this
#: only bounds the effect of a wall-clock jump).
MAX_IDLE = 1.0
#: Steps applied per schedule per pass, so one schedule far behind cannot starve others.
MAX_STEPS_PER_PASS = 1000
#: Longest wait before retrying a schedule whose enqueue failed (1, 2, 4... seconds).
ERROR_RETRY_CAP = 30.0


class Scheduler:
    """Runs ``schedules``. ``clock`` is injectable so tests can move time (DST days...)."""

    def __init__(
        self,
        schedules: Sequence[Schedule],
        *,
        redis_url: str = DEFAULT_REDIS_URL,
        redis_client: aioredis.Redis | None = None,
        clock: Clock | None = None,
        promote: bool = True,
        failed_ttl: int = DEFAULT_FAILED_TTL,
        dead_letter_cap: int = DEFAULT_DEAD_LETTER_CAP,
        compat: str | None = None,
    ) -> None:
        """``failed_ttl`` and ``dead_letter_cap`` apply to unreadable scheduled entries the
        promoter parks in the dead letters, as in the worker (``WorkerSettings``);
        ``compat`` is the migration mode (``WorkerSettings.compat``)."""
        self._compat = compat
        seen: set[str] = set()
        for schedule in schedules:
            if schedule.id in seen:
                raise ValidationError(f"schedule {schedule.id!r} is defined twice")
            seen.add(schedule.id)
        self.schedules = list(schedules)
        # By default the server's time (ServerClock, kept measured); a given clock is used
        # as it is (tests move time).
        self.clock: Clock = clock if clock is not None else ServerClock()
        self.promote = promote
        self._failed_ttl = failed_ttl
        self._dead_letter_cap = dead_letter_cap
        self.scheduler_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.enqueued = 0
        self._redis_url = redis_url
        self._redis = redis_client
        self._owns_redis = redis_client is None
        self._broker: Broker | None = None
        self._store: ScheduleStore | None = None
        self._cursors: dict[str, int] = {}
        self._waits: dict[str, Step] = {}
        self._exhausted: set[str] = set()
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._stopping = asyncio.Event()

    # -- control -----------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current step and return from ``run``."""
        self._stopping.set()

    async def start(self) -> None:
        """Connect, load scripts and register every schedule (idempotent)."""
        if self._store is None:
            if self._redis is None:
                self._redis = connection.async_client(self._redis_url)
            layout = layout_of_client(self._redis)
            if layout.cluster and self._compat == ORIGINAL:
                # The original Go fleet's unrouted lists exist on one server only.
                raise ConfigurationError("compat", "migration mode (original) does not run on Redis Cluster")
            self._broker = Broker(self._redis, layout=layout)
            self._store = ScheduleStore(self._broker)
        assert self._broker is not None
        await self._broker.load_scripts()
        for schedule in self.schedules:
            await self._register(schedule)

    async def aclose(self) -> None:
        if self._owns_redis and self._redis is not None:
            await self._redis.aclose()
        self._redis = None
        self._broker = None
        self._store = None

    def cursor(self, schedule_id: str) -> int | None:
        """This scheduler's view of a schedule's cursor (for tests and logs)."""
        return self._cursors.get(schedule_id)

    # -- one pass ----------------------------------------------------------------------

    async def run_pending(self) -> int:
        """Apply every step that is due now; returns the jobs this scheduler enqueued."""
        enqueued = 0
        for schedule in self.schedules:
            if self.clock.now() < self._retry_at.get(schedule.id, 0.0):
                continue
            try:
                enqueued += await self._run_schedule(schedule)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_connection_error(exc):
                    raise
                # Not Redis being away but this schedule failing (e.g. its queue key holds
                # the wrong type): record it, and retry this schedule with backoff.
                failures = self._failures.get(schedule.id, 0) + 1
                self._failures[schedule.id] = failures
                delay = min(ERROR_RETRY_CAP, 2.0 ** (failures - 1))
                self._retry_at[schedule.id] = self.clock.now() + delay
                log.error("schedule %r: could not enqueue its due tick (retrying in %gs): %s", schedule.id, delay, exc)
                with contextlib.suppress(Exception):
                    await self._require_store().record_error(
                        schedule.id, f"{type(exc).__name__}: {exc}", self.clock.now()
                    )
            else:
                self._failures.pop(schedule.id, None)
                self._retry_at.pop(schedule.id, None)
        return enqueued

    def next_wakeup(self) -> float | None:
        """Earliest time one of the schedules has a step to take (None: never)."""
        now = self.clock.now()
        soonest: float | None = None
        for schedule in self.schedules:
            cursor = self._cursors.get(schedule.id)
            if cursor is None:
                return now
            step = self._plan(schedule, cursor, now)
            if step.action is Action.EXHAUSTED:
                continue
            due = float(step.next_run) if step.action is Action.WAIT and step.next_run is not None else now
            due = max(due, self._retry_at.get(schedule.id, due))
            soonest = due if soonest is None else min(soonest, due)
        return soonest

    async def _run_schedule(self, schedule: Schedule) -> int:
        store = self._require_store()
        enqueued = 0
        for _ in range(MAX_STEPS_PER_PASS):
            cursor = self._cursors.get(schedule.id)
            if cursor is None:
                await self._register(schedule)
                continue
            now = self.clock.now()
            step = self._plan(schedule, cursor, now)
            if step.action is Action.WAIT:
                return enqueued
            if step.action is Action.EXHAUSTED:
                await self._mark_exhausted(schedule, cursor, now)
                return enqueued
            if step.action is Action.FIRE:
                outcome = await store.fire(schedule, step, cursor, now)
                self._report_fire(schedule, step, outcome)
                if outcome.result is FireResult.ENQUEUED:
                    enqueued += 1
                    self.enqueued += 1
            else:
                outcome = await store.advance(
                    schedule.id, cursor, step.cursor, step.next_run, now, _missed_fields(step, schedule, now)
                )
                if outcome.result is not FireResult.LOST:
                    log.warning(
                        "schedule %r: skipped missed ticks from %s to %s (policy 'skip')",
                        schedule.id, _show(schedule, step.missed_from), _show(schedule, step.missed_to),
                    )  # fmt: skip
            self._set_cursor(schedule.id, outcome.cursor)
        return enqueued

    def _plan(self, schedule: Schedule, cursor: int, now: float) -> Step:
        cached = self._waits.get(schedule.id)
        if (
            cached is not None
            and cached.cursor == cursor
            and (cached.action is Action.EXHAUSTED or (cached.next_run is not None and now < cached.next_run))
        ):
            return cached
        step = next_step(schedule, cursor, now)
        if step.action in (Action.WAIT, Action.EXHAUSTED):
            self._waits[schedule.id] = step
        return step

    def _set_cursor(self, schedule_id: str, cursor: int | None) -> None:
        if cursor is None:
            # The state was deleted (``bananas schedules --forget``): register afresh.
            self._cursors.pop(schedule_id, None)
        else:
            self._cursors[schedule_id] = cursor
        self._waits.pop(schedule_id, None)

    def _report_fire(self, schedule: Schedule, step: Step, outcome: Outcome) -> None:
        tick = _show(schedule, step.tick)
        if outcome.result is FireResult.LOST:
            log.debug("schedule %r: tick %s was already decided by another scheduler", schedule.id, tick)
            return
        if outcome.result is FireResult.DUPLICATE:
            log.warning("schedule %r: tick %s was already enqueued before; not enqueued again", schedule.id, tick)
        elif step.catch_up:
            log.warning(
                "schedule %r: missed ticks from %s to %s; enqueued one catch-up run for %s (policy 'once')",
                schedule.id, _show(schedule, step.missed_from), tick, tick,
            )  # fmt: skip
        else:
            log.info("schedule %r: enqueued %s for tick %s", schedule.id, schedule.job, tick)

    async def _register(self, schedule: Schedule) -> None:
        store = self._require_store()
        now = self.clock.now()
        initial = first_cursor(now)
        outcome = await store.register(schedule, initial, schedule.cron.next_after(initial), now)
        cursor = outcome.cursor if outcome.cursor is not None else initial
        if outcome.result is FireResult.LOST:
            # Existing schedule: keep its cursor; the definition may have changed, so
            # refresh the next run it shows (only if nobody moved the cursor meanwhile).
            refreshed = await store.advance(schedule.id, cursor, cursor, schedule.cron.next_after(cursor), now)
            cursor = refreshed.cursor if refreshed.cursor is not None else cursor
        self._set_cursor(schedule.id, cursor)

    async def _mark_exhausted(self, schedule: Schedule, cursor: int, now: float) -> None:
        if schedule.id in self._exhausted:
            return
        self._exhausted.add(schedule.id)
        store = self._require_store()
        message = f"cron expression {schedule.cron.expression!r} has no further tick"
        log.warning("schedule %r: %s", schedule.id, message)
        await store.advance(schedule.id, cursor, cursor, None, now)
        await store.record_error(schedule.id, message, now)

    def _require_store(self) -> ScheduleStore:
        if self._store is None:
            raise RuntimeError("Scheduler.start() has not been called")
        return self._store

    # -- the service loop ----------------------------------------------------------------

    async def run(self, *, install_signal_handlers: bool = False) -> None:
        """Run until ``stop()`` (or SIGTERM/SIGINT with ``install_signal_handlers``)."""
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        helpers: list[asyncio.Task[None]] = []
        backoff = Backoff()
        try:
            if not await self._start_when_reachable(backoff):
                return
            assert self._broker is not None and self._redis is not None
            if isinstance(self.clock, ServerClock):
                with contextlib.suppress(Exception):  # unreachable: the pass below reports it
                    await clock_sync.measure(self._redis, self.clock)
                helpers.append(asyncio.create_task(clock_sync.keep_measured(self._redis, self.clock)))
            await self._warn_about_eviction(self._redis)
            if self.promote:
                wakeup = asyncio.Event()
                listener = WakeupListener(self._redis, {keys.SCHEDULED_NOTIFY_CHANNEL: wakeup})
                promoter = Promoter(
                    self._broker,
                    self.clock,
                    wakeup,
                    failed_ttl=self._failed_ttl,
                    dead_letter_cap=self._dead_letter_cap,
                    **promoter_compat(self._compat),
                )
                helpers.append(asyncio.create_task(listener.run(), name="bananas-scheduler-wakeup"))
                helpers.append(asyncio.create_task(promoter.run(), name="bananas-scheduler-promoter"))
            self._log_started()
            while not self._stopping.is_set():
                try:
                    await self.run_pending()
                    backoff.reset()
                    wake = self.next_wakeup()
                    delay = MAX_IDLE if wake is None else min(MAX_IDLE, max(0.0, wake - self.clock.now()))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    level = logging.WARNING if is_connection_error(exc) else logging.ERROR
                    log.log(level, "scheduler pass failed: %s", exc)
                    delay = backoff.next_delay()
                await self._sleep(delay)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.aclose()
            log.info("scheduler %s stopped; it enqueued %d job(s)", self.scheduler_id, self.enqueued)

    async def _start_when_reachable(self, backoff: Backoff) -> bool:
        """Start, retrying while Redis is unreachable; False if stopped first."""
        while not self._stopping.is_set():
            try:
                await self.start()
                backoff.reset()
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                log.warning("scheduler cannot reach redis yet, retrying: %s", exc)
                await self._sleep(backoff.next_delay())
        return False

    @staticmethod
    async def _warn_about_eviction(client: aioredis.Redis) -> None:
        """A policy that evicts keys may delete the jobs this scheduler enqueues
        (docs/RELIABILITY.md, "Redis must not evict")."""
        try:
            policy = await eviction.read_policy_async(client)
        except Exception as exc:
            log.warning("could not read Redis' maxmemory-policy: %s", exc)
            return
        if eviction.risk(policy) is not eviction.EvictionRisk.NONE:
            log.warning("%s", eviction.describe(policy))

    async def _sleep(self, delay: float) -> None:
        await wait_event(self._stopping, delay)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("scheduler %s received %s, stopping", self.scheduler_id, sig.name)
        self.stop()

    def _log_started(self) -> None:
        self.next_wakeup()  # plans every schedule, so the next runs below are known
        log.info(
            "scheduler %s running %d schedule(s)%s",
            self.scheduler_id,
            len(self.schedules),
            " and promoting due scheduled jobs" if self.promote else "",
        )
        for schedule in self.schedules:
            step = self._waits.get(schedule.id)
            upcoming = _show(schedule, step.next_run) if step is not None and step.next_run else "due now"
            log.info(
                "  %s: %r (%s) -> %s on %s/%s, next run %s",
                schedule.id, schedule.cron.expression, schedule.cron.timezone, schedule.job,
                schedule.routing_key, schedule.priority.value, upcoming,
            )  # fmt: skip


def _show(schedule: Schedule, ts: int | None) -> str:
    if ts is None:
        return "-"
    return to_datetime(ts).astimezone(schedule.cron.tz).isoformat()


def _missed_fields(step: Step, schedule: Schedule, now: float) -> dict[str, str]:
    if step.missed_from is None:
        return {}
    return {
        "last_missed_from": str(step.missed_from),
        "last_missed_to": str(step.missed_to),
        "last_missed_policy": schedule.missed.value,
        "last_missed_at": f"{now:.6f}",
    }
