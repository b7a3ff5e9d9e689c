"""The worker process: fetch loop plus the helper loops, and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import itertools
import logging
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Iterable

import redis.asyncio as aioredis

from bananas.aio import within
from bananas.config import WorkerMode, WorkerSettings, check_compat_layout
from bananas.core.clock import Clock, ServerClock
from bananas.core.fleet import beat_fields, worker_hash
from bananas.core.routing import QueueRef
from bananas.core.selection import Source, base_order
from bananas.events import EventKind, JobEvent, Listener, Listeners
from bananas.redis import clock_sync, connection, keys
from bananas.redis.backoff import Backoff, is_connection_error, is_out_of_memory
from bananas.redis.broker import Broker
from bananas.redis.runner import durability
from bananas.worker.cancels import CancelWatcher
from bananas.worker.executor import Executor
from bananas.worker.fetcher import Fetcher
from bananas.worker.heartbeat import LeaseKeeper
from bananas.worker.outcomes import Delivery, Outcomes
from bananas.worker.preflight import preflight
from bananas.worker.pressure import MemoryPressure
from bananas.worker.processor import GiveBack, Processor
from bananas.worker.promoter import Promoter, promoter_compat
from bananas.worker.reconciler import Reconciler
from bananas.worker.recoverer import Recoverer
from bananas.worker.registry import Registry
from bananas.worker.throughput import Throughput
from bananas.worker.wakeup import WakeupListener
from bananas.worker.writer import Writer

log = logging.getLogger("bananas.worker")

#: Longest an idle worker waits between looks at its queues with no wake-up signal
#: (covers producers that do not publish, such as pre-routing clients).
IDLE_POLL = 1.0
#: Seconds between looks at Redis' memory while it is full (see worker/pressure.py).
MEMORY_POLL = 1.0


def describe_consumption(settings: WorkerSettings) -> str:
    """``consuming gpu > default, high > normal > low, concurrency 10 (strict selection)``:
    routing keys and priorities in preference order, in words rather than Redis keys."""
    return (
        f"consuming {' > '.join(settings.routing_keys)}, "
        f"{' > '.join(p.value for p in settings.priorities)}, "
        f"concurrency {settings.concurrency} ({settings.queue_selection.value} selection)"
    )


class Worker:
    """Consumes jobs for ``settings.routing_keys`` in order, ``settings.concurrency`` at a time."""

    def __init__(
        self,
        registry: Registry,
        settings: WorkerSettings,
        *,
        clock: Clock | None = None,
        redis_client: aioredis.Redis | None = None,
        queue_order: list[QueueRef] | None = None,
        listeners: Iterable[Listener] = (),
    ) -> None:
        """``clock``: by default the server's time (a ``ServerClock`` measured against
        Redis and kept measured); any other ``Clock`` is used as given (tests).
        ``listeners``: extra event listeners (every kind) besides the registry's own
        ``@registry.on`` ones; see docs/EVENTS.md."""
        self.registry = registry
        self.settings = settings
        self.clock: Clock = clock if clock is not None else ServerClock()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._handled = self._handled_names(registry, settings)
        self._queue_order_override = queue_order
        self._redis = redis_client
        self._owns_redis = redis_client is None
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._work_ready = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._running: dict[str, tuple[Delivery, asyncio.Task[None]]] = {}
        self._running_by_route: dict[str, int] = {}
        self._parked_wakeup = asyncio.Event()
        self._route_channels: dict[str, str] = {}
        # Jobs that lost their worker before run one at a time with nothing beside them;
        # while one waits or runs, the worker fetches nothing new (see _alone).
        self._alone_waiting: set[str] = set()
        self._alone_running = False
        self._lost: set[str] = set()
        self._pressure = MemoryPressure()
        self._tokens = itertools.count(1)
        self.counters = Counters()
        self.listeners = Listeners(registry.listeners)
        self.listeners.add(self.counters.observe, Counters.KINDS)
        self.throughput = Throughput()
        self.listeners.add(self.throughput.observe, Throughput.KINDS)
        for listener in listeners:
            self.listeners.add(listener)

        self.started_at = self.clock.now()

    @property
    def failed(self) -> int:
        """Attempts that failed here (retried or dead)."""
        return self.counters.failed

    @property
    def processed(self) -> int:
        """Attempts this worker finished (whatever their outcome)."""
        return self.counters.processed

    @staticmethod
    def _handled_names(registry: Registry, settings: WorkerSettings) -> frozenset[str] | None:
        names = frozenset(registry.names)
        if settings.job_types is not None:
            names &= frozenset(settings.job_types)
        return names

    @property
    def queue_order(self) -> list[QueueRef]:
        if self._queue_order_override is not None:
            return list(self._queue_order_override)
        # The legacy unrouted lists exist on one server only (not in the cluster layout).
        legacy = (
            self.settings.mode is not WorkerMode.SPECIALIZED
            and not keys.layout_for_url(self.settings.redis_url).cluster
        )
        return base_order(
            self.settings.routing_keys, self.settings.priorities, self.settings.queue_selection, legacy=legacy
        )

    # -- public control ----------------------------------------------------------------

    def stop(self) -> None:
        """Begin graceful shutdown: stop fetching, let running jobs finish (within grace)."""
        self._stopping.set()
        # The fetch loop waits on one of these at a time (see ``_until``): wake it.
        self._work_ready.set()
        self._slot_free.set()

    async def wait_ready(self) -> None:
        """Returns once the worker is subscribed and fetching."""
        await self._ready.wait()
        await self._subscribed.wait()

    async def run(self, *, install_signal_handlers: bool = False) -> None:
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        check_compat_layout(self.settings.compat, self.settings.redis_url)
        client = self._redis or connection.async_client(self.settings.redis_url)
        if isinstance(self.clock, ServerClock):
            with contextlib.suppress(Exception):  # unreachable: the fetch loop reports it
                await clock_sync.measure(client, self.clock)
                self.started_at = self.clock.now()  # in the server's time, as the fleet reads it
        # A worker does not stop on too few replicas: the write is done; it is logged.
        broker = Broker(
            client,
            durability=durability(self.settings.wait_replicas, strict=False),
            layout=keys.layout_for_url(self.settings.redis_url),
        )
        if not await self._preflight(client, broker):
            return
        writer = Writer(broker, self._pressure)
        outcomes = Outcomes(self.settings, writer, self.clock, self.worker_id, self.listeners)
        executor = Executor(self.settings.concurrency)
        fetcher = Fetcher(broker, self.settings, self._handled, self.clock, on_change=self._work_ready.set)
        if self._queue_order_override is not None:
            fetcher.override_order(self._queue_order_override)
        processor = Processor(
            self.registry, self.settings, executor, outcomes,
            handled=self._handled, limits=lambda: fetcher.limits, run_alone=self._alone,
        )  # fmt: skip
        promote_wakeup = asyncio.Event()
        layout = broker.layout
        self._route_channels = {layout.notify_channel(k): k for k in self.settings.routing_keys}
        channels = {channel: self._work_ready for channel in self._route_channels}
        channels[keys.SCHEDULED_NOTIFY_CHANNEL] = promote_wakeup
        cancels = CancelWatcher(broker, held=self._held_ids, on_cancel=self._cancel_requested)
        mode = self.settings.mode
        keeper = LeaseKeeper(
            broker,
            self.clock,
            self.settings.lease_seconds,
            held=lambda: {job_id: d.token for job_id, (d, _) in self._running.items()},
            on_lost=self._lost.add,
            worker_id=self.worker_id,
            describe=self._describe(),
            counters=lambda: (self.processed, self.failed),
        )
        recoverer = Recoverer(
            broker,
            self.clock,
            interval=min(5.0, max(0.25, self.settings.lease_seconds / 4)),
            max_recoveries=self.settings.max_recoveries,
            is_mine=lambda job_id: job_id in self._running,
            result_failure_ttl=self.settings.result_failure_ttl,
            failed_ttl=self.settings.failed_ttl,
            dead_letter_cap=self.settings.dead_letter_cap,
            listeners=self.listeners,
            worker_id=self.worker_id,
            routing_keys=self.settings.routing_keys,
        )
        helpers = [
            asyncio.create_task(writer.run(), name="bananas-writer"),
            asyncio.create_task(
                WakeupListener(
                    client,
                    channels,
                    on_parked=fetcher.parked_changed,
                    on_message=lambda channel: self._on_wakeup(fetcher, channel),
                    on_data={keys.CANCEL_CHANNEL: cancels.heard},
                    on_subscribed=self._subscribed.set,
                    # Cluster: the routing keys' channels are shard channels (SSUBSCRIBE).
                    shard_channels=self._route_channels if layout.cluster else (),
                ).run(),
                name="bananas-wakeup",
            ),
            asyncio.create_task(keeper.run(), name="bananas-heartbeat"),
            asyncio.create_task(fetcher.run(), name="bananas-plan-refresh"),
            asyncio.create_task(cancels.run(), name="bananas-cancels"),
            asyncio.create_task(self.throughput.run(broker), name="bananas-throughput"),
        ]
        if isinstance(self.clock, ServerClock):
            helpers.append(asyncio.create_task(clock_sync.keep_measured(client, self.clock), name="bananas-clock"))
        # A thin worker only runs jobs; promotion, recovery and repairs are left to the
        # other processes of the fleet (docs/WORKER_MODES.md).
        if mode is not WorkerMode.THIN:
            reconciler = Reconciler(
                broker,
                self.clock,
                lease_seconds=self.settings.lease_seconds,
                owner=self.worker_id,
                dead_letter_cap=self.settings.dead_letter_cap,
            )
            helpers += [
                asyncio.create_task(recoverer.run(), name="bananas-recoverer"),
                asyncio.create_task(
                    Promoter(
                        broker,
                        self.clock,
                        promote_wakeup,
                        failed_ttl=self.settings.failed_ttl,
                        dead_letter_cap=self.settings.dead_letter_cap,
                        routing_keys=self.settings.routing_keys,
                        **promoter_compat(self.settings.compat),
                    ).run(),
                    name="bananas-promoter",
                ),
                asyncio.create_task(reconciler.run(), name="bananas-reconciler"),
            ]
        missing = sorted(set(self.settings.job_types or ()) - set(self.registry.names))
        if missing:
            log.warning("WORKER_JOB_TYPES names job(s) with no handler in this app: %s", ", ".join(missing))
        if mode is WorkerMode.SCHEDULER_ONLY:
            log.info("worker %s in scheduler-only mode: promotion, recovery and repairs, no jobs", self.worker_id)
        else:
            log.info("worker %s %s", self.worker_id, describe_consumption(self.settings))
        try:
            if mode is WorkerMode.SCHEDULER_ONLY:
                self._ready.set()
                await self._stopping.wait()
            else:
                await self._fetch_loop(fetcher, processor, broker)
            await self._drain(broker, outcomes)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await within(helpers[0], 5)
            for task in helpers[1:]:
                task.cancel()
            # A helper stuck in a Redis call must not hold the whole stop hostage.
            _, stuck = await asyncio.wait(helpers, timeout=5)
            for task in stuck:
                log.warning("helper %s did not stop in time; leaving it", task.get_name())
            with contextlib.suppress(Exception):
                await self.throughput.flush(broker)
            with contextlib.suppress(Exception):
                await broker.retire(self.worker_id)
            executor.shutdown()
            with contextlib.suppress(Exception):
                await broker.close()
            if self._owns_redis:
                await client.aclose()
            log.info("worker %s stopped after %d job(s)", self.worker_id, self.processed)

    async def _preflight(self, client: aioredis.Redis, broker: Broker) -> bool:
        """docs/RELIABILITY.md, "Starting": reachable, credentials, permissions, eviction
        policy. Raises ``StartupError``; False if stopped meanwhile (both: nothing started)."""

        async def first_writes() -> None:
            await broker.load_scripts()
            # The heartbeat's own first beat, earlier: the same entry, the same commands.
            now = self.clock.now()
            info = {**self._describe(), **beat_fields(now, 0, self.processed, self.failed)}
            await broker.announce(self.worker_id, now, info, ttl_ms=max(1, int(self.settings.lease_seconds * 2000)))

        try:
            ready = await preflight(
                client, self.settings.redis_url, first_writes=first_writes,
                allow_eviction=self.settings.allow_eviction, stopping=self._stopping,
            )  # fmt: skip
        except BaseException:
            ready = False
            raise
        finally:
            if not ready:
                with contextlib.suppress(Exception):
                    await broker.retire(self.worker_id)
                with contextlib.suppress(Exception):
                    await broker.close()
                if self._owns_redis:
                    await client.aclose()
        return ready

    def _describe(self) -> dict[str, str]:
        """The fixed fields of this worker's entry in the registry (``bananas workers``)."""
        settings = self.settings
        return worker_hash(
            host=socket.gethostname(),
            pid=os.getpid(),
            routing_keys=settings.routing_keys,
            priorities=[p.value for p in settings.priorities],
            queue_selection=settings.queue_selection.value,
            concurrency=settings.concurrency,
            started_at=self.started_at,
            version=_version(),
            mode=settings.mode.value,
            handlers=sorted(self._handled if self._handled is not None else self.registry.names),
            lease_seconds=settings.lease_seconds,
        )

    # -- the fetch loop ----------------------------------------------------------------------

    async def _fetch_loop(self, fetcher: Fetcher, processor: Processor, broker: Broker) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            free = self.settings.concurrency - len(self._running)
            if free <= 0 or self._alone_waiting or self._alone_running:
                self._slot_free.clear()
                await self._until(self._slot_free, None)
                continue
            # Cleared before looking, so a publish during the look still wakes us.
            self._work_ready.clear()
            try:
                if self._pressure.full and not await self._pressure.check(broker):
                    # Redis is out of memory: take nothing new until it has room.
                    await self._until(None, MEMORY_POLL)
                    continue
                token = f"{self.worker_id}:{next(self._tokens)}"
                wait, taken = await fetcher.fetch(free, self._running_by_route, token)
                if taken:
                    self._start(processor, taken, token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_out_of_memory(exc):
                    self._pressure.refused("taking new jobs")
                    await self._until(None, MEMORY_POLL)
                    continue
                if not is_connection_error(exc):
                    log.exception("fetching jobs failed")
                else:
                    log.warning("redis unavailable while fetching, retrying: %s", exc)
                await self._until(None, backoff.next_delay())
                continue
            backoff.reset()
            self._ready.set()
            if len(taken) < free:
                # The lists held less than we asked for (or limits held the rest back):
                # asking again at once would only find them empty. Sleep until a wake-up
                # (one that came during the look ends this wait at once), a rate limit
                # opening, or the safety poll. The jobs just taken start meanwhile, so an
                # idle worker's pick-up costs one dequeue, not a second empty one before it.
                idle = min(wait, IDLE_POLL) if wait > 0 else IDLE_POLL
                await self._until(self._work_ready, idle)

    def _start(self, processor: Processor, taken: list[tuple[Source, str, bytes | None]], token: str) -> None:
        for source, job_id, raw in taken:
            delivery = Delivery(job_id, token, source)
            route = source.ref.routing_key
            self._running_by_route[route] = self._running_by_route.get(route, 0) + 1
            task = asyncio.create_task(self._process(processor, delivery, raw))
            self._running[job_id] = (delivery, task)

    @contextlib.asynccontextmanager
    async def _alone(self, job_id: str) -> AsyncIterator[None]:
        """Let ``job_id`` run once every other running job has finished, while the worker
        takes nothing new. Only one such job is held at a time: another one arriving
        meanwhile is handed back (``GiveBack``) rather than held, since a held job dies
        with the worker too."""
        if self._alone_waiting or self._alone_running:
            raise GiveBack(job_id)
        self._alone_waiting.add(job_id)
        try:
            while len(self._running) > 1:
                self._slot_free.clear()
                await self._slot_free.wait()
        finally:
            self._alone_waiting.discard(job_id)
        self._alone_running = True
        try:
            yield
        finally:
            self._alone_running = False
            self._slot_free.set()

    async def _process(self, processor: Processor, delivery: Delivery, raw: bytes | None) -> None:
        try:
            await processor.process(delivery, raw)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The outcome could not be written (e.g. Redis away for good); the lease will
            # expire and another delivery will run the job: at-least-once, never lost.
            log.exception("job %s: recording its outcome failed", delivery.job_id)
        finally:
            self._running.pop(delivery.job_id, None)
            route = delivery.source.ref.routing_key
            self._running_by_route[route] = self._running_by_route.get(route, 1) - 1
            self._lost.discard(delivery.job_id)
            self._slot_free.set()

    async def _until(self, event: asyncio.Event | None, timeout: float | None) -> None:
        """Wait for ``event`` (None: for a stop), at most ``timeout`` seconds. ``stop()``
        sets the loop's events too, so one wait covers both: no task and no ``asyncio.wait``
        per wait, which an idle worker's pick-up would otherwise pay on every wake-up."""
        try:
            async with asyncio.timeout(timeout):
                await (event or self._stopping).wait()
        except TimeoutError:
            pass

    # -- shutdown ----------------------------------------------------------------------

    async def _drain(self, broker: Broker, outcomes: Outcomes) -> None:
        """Let running jobs finish within the grace period; give the rest back at once,
        without counting the attempts they began (a second signal cuts the wait short)."""
        if not self._running:
            return
        deliveries = [delivery for delivery, _ in self._running.values()]
        tasks = [task for _, task in self._running.values()]
        log.info("waiting up to %gs for %d running job(s)", self.settings.shutdown_grace, len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # Whatever has no outcome written, cancelled by the grace period or by a second
        # signal, goes back now, not when its lease runs out (which would count as a
        # lost worker against the job).
        batch = [(d, call) for d in deliveries if (call := outcomes.give_back_call(d)) is not None]
        if not batch:
            return
        replies = await broker.run_many([call for _, call in batch])
        for (delivery, _), reply in zip(batch, replies, strict=True):
            outcomes.given_back(delivery, reply == 1)
        log.info("gave %d unfinished job(s) back to their queues", sum(1 for r in replies if r == 1))

    def _held_ids(self) -> list[str]:
        return list(self._running)

    def _cancel_requested(self, job_id: str) -> None:
        """An operator asked to cancel ``job_id``: an async handler is cancelled now; a
        sync one sees ``job.cancel_requested`` (a thread cannot be stopped)."""
        entry = self._running.get(job_id)
        if entry is None:
            return
        delivery, task = entry
        if delivery.cancel_requested:
            return
        delivery.cancel_requested = True
        job = delivery.job
        if job is not None:
            job.cancel_requested = True
        if delivery.in_async_handler:
            task.cancel()
        log.info("job %s: cancellation requested", job_id)

    def _on_wakeup(self, fetcher: Fetcher, channel: str) -> None:
        route = self._route_channels.get(channel)
        if route is not None:
            fetcher.route_woken(route)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            log.warning("second %s: giving running jobs back and stopping now", sig.name)
            for _, task in self._running.values():
                task.cancel()
            return
        log.info("%s received: finishing running jobs, then stopping", sig.name)
        self.stop()


class Counters:
    """What this worker has done, counted from its own events (shown by ``bananas workers``)."""

    __slots__ = ("failed", "processed")
    KINDS = (EventKind.SUCCEEDED, EventKind.RETRYING, EventKind.DEAD, EventKind.CANCELLED)

    def __init__(self) -> None:
        self.processed = 0
        self.failed = 0

    def observe(self, event: JobEvent) -> None:
        # Counted whether or not Redis took the outcome: the attempt ran here either way.
        self.processed += 1
        if event.kind is not EventKind.SUCCEEDED:
            self.failed += 1


def _version() -> str:
    try:
        return importlib.metadata.version("bananas")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
