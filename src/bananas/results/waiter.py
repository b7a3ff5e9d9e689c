"""Waiting for results without polling and without races.

One ``ResultWaiter`` (one per client, so one per process in practice) holds a single
Pub/Sub connection shared by every concurrent wait. A wait subscribes to the job's
channel, waits for the server to confirm the subscription, and only then reads the
result hash: a result stored before the confirmation is found by the read, one stored
after it is announced on the channel. Either way it is seen.

On Redis Cluster (``layout.cluster``) the channels are shard channels of the job's
routing key's slot: the waiter subscribes with ``SSUBSCRIBE`` through redis-py's
``ClusterPubSub``, which keeps one connection per node that holds a watched channel;
the listener reads all of them at once.

A client that is garbage collected, or left open when the program ends, cleans up
without a word: the listener task holds its waiter only weakly and is kept alive by
``_LISTENERS`` (asyncio keeps only weak references to tasks), so it is never destroyed
while pending ("Task was destroyed but it is pending!"); when the waiter is collected,
a finalizer cancels the listener, which closes its subscription.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from bananas.aio import within
from bananas.core.codec import decode_id
from bananas.core.result import JobResult
from bananas.errors import JobTimeoutError
from bananas.redis import keys
from bananas.redis.backoff import Backoff, is_connection_error
from bananas.redis.keys import KeyLayout
from bananas.redis.runner import AsyncRunner
from bananas.redis.scripts import Call

log = logging.getLogger("bananas.results")

#: Result listener tasks that are running: a strong reference for each, dropped when it
#: ends (see the module docstring).
_LISTENERS: set[asyncio.Task[None]] = set()


async def fetch_result(
    client: aioredis.Redis, job_id: str, layout: KeyLayout = keys.STANDALONE
) -> JobResult | None:
    if layout.cluster and layout.routing_key_of(job_id) is None:
        return None  # an id without a routing key names no job on Cluster
    data = await client.hgetall(layout.result(job_id))
    return JobResult.from_hash(job_id, data) if data else None


class Watch:
    """An active subscription to one job's result channel."""

    def __init__(self, waiter: ResultWaiter, job_id: str, notified: asyncio.Future[None]) -> None:
        self._waiter = waiter
        self.job_id = job_id
        self._notified = notified

    async def result(self, timeout: float | None) -> JobResult:
        """The stored result, waiting up to ``timeout`` seconds (None: forever)."""
        found = await fetch_result(self._waiter.client, self.job_id, self._waiter.layout)
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await within(asyncio.shield(self._notified), remaining)
            except TimeoutError:
                raise JobTimeoutError(self.job_id, timeout or 0.0) from None
            try:
                found = await fetch_result(self._waiter.client, self.job_id, self._waiter.layout)
            except Exception as exc:
                # Woken by a lost subscription (its server went away: a failover on
                # Cluster): the listener wakes us again once it has subscribed anew.
                if not is_connection_error(exc):
                    raise
                found = None
            if found is not None:
                return found
            # Notified but the hash is gone (zero TTL or deleted): keep waiting for a
            # later outcome, e.g. after a retry from the dead letters.
            self._notified = self._waiter._renew(self.job_id, self._notified)


class ResultWaiter:
    def __init__(self, client: aioredis.Redis, layout: KeyLayout = keys.STANDALONE) -> None:
        self.client = client
        self.layout = layout
        #: Cluster: subscriptions are to shard channels (SSUBSCRIBE), one connection per node.
        self._sharded = layout.cluster
        #: Set when a subscription may have opened a connection to another node (Cluster):
        #: the listener starts reading it.
        self._nodes_changed = asyncio.Event()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._stop_listener: weakref.finalize[Any, Any] | None = None

    @contextlib.asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[Watch]:
        """Subscribe to ``job_id``'s result; the subscription is live inside the block."""
        channel = self.layout.result_channel(job_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            # Inside the ``try``: a wait cancelled while its subscription is being confirmed
            # must still unsubscribe, or the channel and its future would stay forever.
            await self._add(channel, future)
            yield Watch(self, job_id, future)
        finally:
            await self._remove(channel, future)

    async def wait(self, job_id: str, timeout: float | None) -> JobResult:
        async with self.watch(job_id) as watch:
            return await watch.result(timeout)

    async def subscribe(self, channel: str, future: asyncio.Future[None]) -> None:
        """Resolve ``future`` on the next message of ``channel`` (any channel: progress
        announcements share this connection); returns once the subscription is live."""
        await self._add(channel, future)

    async def unsubscribe(self, channel: str, future: asyncio.Future[None]) -> None:
        await self._remove(channel, future)

    async def aclose(self) -> None:
        if self._stop_listener is not None:
            self._stop_listener.detach()
            self._stop_listener = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    # -- subscription bookkeeping ----------------------------------------------------

    def _renew(self, job_id: str, old: asyncio.Future[None]) -> asyncio.Future[None]:
        channel = self.layout.result_channel(job_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(channel, [])
        if old in waiters:
            waiters.remove(old)
        waiters.append(future)
        return future

    async def _add(self, channel: str, future: asyncio.Future[None], *, confirmed: bool = True) -> asyncio.Future[None]:
        """Subscribe ``future`` to ``channel``. Returns the subscription's confirmation;
        with ``confirmed``, only once it has come (the subscription is live)."""
        async with self._lock:
            waiters = self._waiters.setdefault(channel, [])
            waiters.append(future)
            if len(waiters) > 1:
                confirmation = self._confirmations.get(channel)
            else:
                confirmation = asyncio.get_running_loop().create_future()
                self._confirmations[channel] = confirmation
                if self._pubsub is None:
                    if self._sharded:
                        # The cluster client reads the slot map on its first command;
                        # SSUBSCRIBE needs it first (a fresh client has sent none yet).
                        await self.client.initialize()
                    self._pubsub = self.client.pubsub()
                if self._sharded:
                    await self._pubsub.ssubscribe(channel)
                    self._nodes_changed.set()
                else:
                    await self._pubsub.subscribe(channel)
                if self._reader is None or self._reader.done():
                    self._start_listener()
        if confirmation is None:  # cannot happen (kept while the channel has waiters); be safe
            confirmation = asyncio.get_running_loop().create_future()
            confirmation.set_result(None)
        if confirmed:
            await asyncio.shield(confirmation)
        return confirmation

    async def _remove(self, channel: str, future: asyncio.Future[None]) -> None:
        async with self._lock:
            waiters = self._waiters.get(channel, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters and channel in self._waiters:
                del self._waiters[channel]
                self._confirmations.pop(channel, None)
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        if self._sharded:
                            await self._pubsub.sunsubscribe(channel)
                        else:
                            await self._pubsub.unsubscribe(channel)

    def _start_listener(self) -> None:
        if self._stop_listener is not None:
            self._stop_listener.detach()
        listen = _listen_sharded if self._sharded else _listen
        task = asyncio.create_task(listen(weakref.ref(self), self._pubsub), name="bananas-results")
        _LISTENERS.add(task)
        task.add_done_callback(_LISTENERS.discard)
        self._reader = task
        self._stop_listener = weakref.finalize(self, _cancel_soon, task)

    def _moved(self, message: dict[str, Any]) -> bool:
        """A ``sunsubscribe`` we did not ask for: the channel is still watched, so the
        server ended it (Redis Cluster: its slot moved to another master)."""
        return decode_id(message.get("type")) == "sunsubscribe" and decode_id(message.get("channel")) in self._waiters

    async def _resubscribe_sharded(self) -> bool:
        """Cluster: a new ``ClusterPubSub`` on a fresh slot map, subscribed to every
        watched channel. False when that failed (a master still down): try again later."""
        async with self._lock:
            old, self._pubsub = self._pubsub, None
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.aclose()
            client: Any = self.client
            try:
                await client.nodes_manager.initialize()  # ask the cluster where slots are now
            except Exception as exc:
                if not is_connection_error(exc):
                    log.error("result listener: reading the slot map failed: %r", exc)
                return False
            self._pubsub = client.pubsub()
            channels = list(self._waiters)
            try:
                if channels:
                    await self._pubsub.ssubscribe(*channels)
            except Exception as exc:
                if not is_connection_error(exc):
                    log.error("result listener: subscribing again failed: %r", exc)
                return False
            finally:
                self._nodes_changed.set()
            return True

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def _on_message(self, message: dict[str, Any]) -> None:
        raw = message.get("channel")
        channel = decode_id(raw)
        kind = decode_id(message.get("type"))
        if kind in ("subscribe", "ssubscribe"):
            confirmation = self._confirmations.get(channel)
            if confirmation is not None and not confirmation.done():
                confirmation.set_result(None)
        elif kind in ("message", "smessage"):
            for future in self._waiters.get(channel, []):
                if not future.done():
                    future.set_result(None)


async def _listen(owner: weakref.ref[ResultWaiter], pubsub: Any) -> None:
    """The one reader of a waiter's subscription. It holds the waiter only between two
    reads, so a client nobody uses any more can be collected while this waits."""
    backoff = Backoff()
    try:
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_connection_error(exc):
                    log.exception("result listener failed")
                await backoff.sleep()
                # redis-py re-subscribes on reconnect; results stored meanwhile were not
                # announced, so wake every waiter to read its hash again.
                waiter = owner()
                if waiter is None:
                    return
                waiter._wake_all()
                del waiter
                continue
            backoff.reset()
            waiter = owner()
            if waiter is None:
                return
            if message is not None:
                waiter._on_message(message)
            del waiter
    finally:
        if owner() is None:  # collected: nobody else will close the subscription
            with contextlib.suppress(BaseException):
                await pubsub.aclose()


async def _listen_sharded(owner: weakref.ref[ResultWaiter], pubsub: Any) -> None:
    """``_listen`` for a ``ClusterPubSub``: it holds one subscription connection per node
    (``node_pubsub_mapping``); this reads every one of them at once, and picks up the
    connections that later subscriptions open (``_nodes_changed``).

    A node's connection that fails (its master died) or a shard subscription the server
    ends itself (its slot moved to another master) makes the waiter subscribe everything
    again on a fresh slot map (``_resubscribe_sharded``, retried with backoff until it
    works), and every waiter reads its hash again: nothing announced meanwhile is missed."""
    backoff = Backoff()
    reads: dict[Any, asyncio.Task[Any]] = {}
    changed: asyncio.Task[Any] | None = None
    try:
        while True:
            waiter = owner()
            if waiter is None:
                return
            pubsub = waiter._pubsub
            nodes_changed = waiter._nodes_changed
            nodes_changed.clear()
            del waiter
            # A node's connection is readable once its first SSUBSCRIBE went out (it is in
            # the mapping a moment before) and while it holds a subscription.
            mapping = pubsub.node_pubsub_mapping if pubsub is not None else {}
            current = [p for p in mapping.values() if p.connection is not None and p.subscribed]
            for node_pubsub in current:
                if node_pubsub not in reads:
                    reads[node_pubsub] = asyncio.ensure_future(node_pubsub.get_message(timeout=None))
            for gone in [p for p in reads if p not in current]:
                reads.pop(gone).cancel()
            if changed is None or changed.done():
                changed = asyncio.ensure_future(nodes_changed.wait())
            done, _ = await asyncio.wait([*reads.values(), changed], return_when=asyncio.FIRST_COMPLETED)
            failed: BaseException | None = None
            for node_pubsub, task in list(reads.items()):
                if task not in done:
                    continue
                del reads[node_pubsub]
                error = task.exception()
                if isinstance(error, RuntimeError):
                    continue  # its connection was let go meanwhile (no subscription left)
                if error is not None:
                    failed = error
                    continue
                message = task.result()
                waiter = owner()
                if waiter is None:
                    return
                if message is not None:
                    if waiter._moved(message):
                        failed = _SlotMoved(decode_id(message.get("channel")))
                    else:
                        waiter._on_message(message)
                del waiter
            if failed is None:
                backoff.reset()
                continue
            if is_connection_error(failed) or isinstance(failed, _SlotMoved):
                log.info("result listener: %s; subscribing again", failed or type(failed).__name__)
            else:
                log.error("result listener failed: %r", failed)
            for task in reads.values():
                task.cancel()
            reads.clear()
            while True:
                await backoff.sleep()
                waiter = owner()
                if waiter is None:
                    return
                resubscribed = await waiter._resubscribe_sharded()
                # Results stored meanwhile were not announced to us: every waiter reads
                # its hash again (and waits on, if there is none yet).
                waiter._wake_all()
                del waiter
                if resubscribed:
                    break
    finally:
        for task in [*reads.values(), *([changed] if changed is not None else [])]:
            task.cancel()
        waiter = owner()
        if waiter is None:  # collected: nobody else will close the subscription
            with contextlib.suppress(BaseException):
                await pubsub.aclose()


class _SlotMoved(Exception):
    """The server ended a shard subscription itself: its slot now lives on another master."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"the slot of {channel} moved")


def _cancel_soon(task: asyncio.Task[None]) -> None:
    """The waiter was collected (or the program ends): stop its listener, from any thread."""
    if task.done():
        return
    with contextlib.suppress(RuntimeError):  # its loop is closed already
        task.get_loop().call_soon_threadsafe(task.cancel)


async def wait_announced(
    waiter: ResultWaiter, job_id: str, timeout: float | None, outcome: concurrent.futures.Future[JobResult]
) -> None:
    """The waiting half of a submit-and-wait whose submit is sent by someone else at the
    same time (the blocking client, from its own thread and connection). Not a race, for
    the reason given in ``submit_then_wait``. The result (or error) goes to ``outcome``
    before the unsubscribe, so the caller does not wait for that."""
    channel = waiter.layout.result_channel(job_id)
    notified: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        await waiter._add(channel, notified)
        found = await Watch(waiter, job_id, notified).result(timeout)
        if not outcome.done():
            outcome.set_result(found)
    except BaseException as exc:
        if not outcome.done():
            outcome.set_exception(exc)
        raise
    finally:
        await waiter._remove(channel, notified)


async def submit_then_wait(
    runner: AsyncRunner, waiter: ResultWaiter, job_id: str, call: Call, timeout: float | None
) -> JobResult:
    """Subscribe and submit at once (two round trips overlapped, not one after the other),
    then read. Not a race: ``Watch.result`` reads the result hash only after the
    subscription is confirmed, so a result stored before the subscription was live is
    found by that read, and one stored after it is announced on the channel."""
    channel = waiter.layout.result_channel(job_id)
    notified: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        confirmation = await waiter._add(channel, notified, confirmed=False)
        await asyncio.gather(asyncio.shield(confirmation), runner.run(call))
        return await Watch(waiter, job_id, notified).result(timeout)
    finally:
        await waiter._remove(channel, notified)
