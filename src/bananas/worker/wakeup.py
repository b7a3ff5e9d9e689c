"""Wake-up signals over Pub/Sub, so an idle worker neither polls nor sleeps through work.

Producers publish on the routing key's notify channel (``layout.notify_channel``) when a
job becomes ready. The fetcher clears its event *before* it looks at the queues, so a
publish that lands while it looks still wakes it: no job can slip between "queues empty"
and "wait".

On Redis Cluster the routing keys' channels are shard channels (the scripts SPUBLISH
them, see _notify.lua): the listener SSUBSCRIBEs each on the master owning its slot and
reads every master's subscription at once; the fleet-wide channels (cancel, scheduled)
stay plain SUBSCRIBE, which a cluster delivers everywhere. A subscription lost with its
master (a failover) or moved with its slot is made again on the current slot map, and
every routing key counts as woken then, as after any reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

import redis.asyncio as aioredis

from bananas.core.codec import decode_id
from bananas.redis.backoff import Backoff, is_connection_error

log = logging.getLogger("bananas.worker")


class WakeupListener:
    def __init__(
        self,
        client: aioredis.Redis,
        channels: Mapping[str, asyncio.Event],
        on_parked: Callable[[], None] | None = None,
        on_message: Callable[[str], None] | None = None,
        on_data: Mapping[str, Callable[[str], None]] | None = None,
        on_subscribed: Callable[[], None] | None = None,
        shard_channels: Collection[str] = (),
    ) -> None:
        """``channels`` maps each channel name to the event it sets; ``on_parked`` is
        called when a message says a job was parked (see park.lua); ``on_data`` maps
        further channels to a callback that gets each message's text; ``on_subscribed`` is
        called each time the subscription is confirmed (``Worker.wait_ready`` uses it).
        ``shard_channels``: those of the channels that are Redis Cluster shard channels
        (the cluster layout's per-routing-key channels), subscribed with SSUBSCRIBE."""
        self._client = client
        self._channels = dict(channels)
        self._on_data = dict(on_data or {})
        self._on_parked = on_parked
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._shard = frozenset(shard_channels)

    def _subscribed(self) -> None:
        if self._on_subscribed is not None:
            self._on_subscribed()
        # Anything published while we were not subscribed is unknown: look now.
        for name, event in self._channels.items():
            if self._on_message is not None:
                self._on_message(name)
            event.set()

    def _heard(self, message: dict[str, Any]) -> None:
        name = decode_id(message["channel"])
        listener = self._on_data.get(name)
        if listener is not None:
            listener(decode_id(message.get("data")))
            return
        if self._on_message is not None:
            self._on_message(name)
        target = self._channels.get(name)
        if target is not None:
            target.set()
        if self._on_parked is not None and message.get("data") in (b"parked", "parked"):
            self._on_parked()

    async def run(self) -> None:
        if self._shard:
            await self._run_sharded()
            return
        backoff = Backoff()
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._channels, *self._on_data)
                self._subscribed()
                backoff.reset()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        self._heard(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_connection_error(exc):
                    log.exception("wake-up listener failed; restarting it")
                else:
                    log.warning("wake-up listener lost redis, reconnecting: %s", exc)
                await backoff.sleep()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _run_sharded(self) -> None:
        """``run`` on a Redis Cluster client: one SSUBSCRIBE connection per master that
        owns a shard channel, one SUBSCRIBE connection for the plain channels, all read
        at once (redis-py's own round robin over masters would wait out each one's
        timeout in turn)."""
        backoff = Backoff()
        client: Any = self._client
        plain = [c for c in (*self._channels, *self._on_data) if c not in self._shard]
        refresh = False
        while True:
            pubsub = client.pubsub()
            readers: list[asyncio.Task[None]] = []
            try:
                await client.initialize()
                if refresh:
                    # After a lost master or a moved slot: ask the cluster where slots are now.
                    await client.nodes_manager.initialize()
                if plain:
                    await pubsub.subscribe(*plain)
                await pubsub.ssubscribe(*self._shard)
                nodes = [client.get_node(node_name=name) for name in list(pubsub.node_pubsub_mapping)]
                readers = [asyncio.create_task(self._read_shard(pubsub, node)) for node in nodes]
                if plain:
                    readers.append(asyncio.create_task(self._read_plain(pubsub)))
                self._subscribed()
                backoff.reset()
                done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a reader only ends by an error: raise it
                raise _Resubscribe("a subscription ended")
            except asyncio.CancelledError:
                raise
            except _Resubscribe as exc:
                log.info("wake-up listener: %s; subscribing again", exc)
                refresh = True
                await backoff.sleep()
            except Exception as exc:
                refresh = True
                if not is_connection_error(exc):
                    log.exception("wake-up listener failed; restarting it")
                else:
                    log.warning("wake-up listener lost redis, reconnecting: %s", exc)
                await backoff.sleep()
            finally:
                for task in readers:
                    task.cancel()
                if readers:
                    await asyncio.gather(*readers, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _read_shard(self, pubsub: Any, node: Any) -> None:
        while True:
            if node.name not in pubsub.node_pubsub_mapping:
                # redis-py moved this master's subscriptions itself (a new slot map): read
                # them where they are now (and never spin on a connection that is gone).
                raise _Resubscribe(f"the subscriptions on {node.name} moved")
            message = await pubsub.get_sharded_message(target_node=node, timeout=5.0)
            if message is None:
                continue
            kind = decode_id(message["type"])
            if kind == "smessage":
                self._heard(message)
            elif kind == "sunsubscribe":
                # The server drops a shard subscription whose slot moved to another master.
                raise _Resubscribe(f"the slot of {decode_id(message['channel'])} moved")

    async def _read_plain(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            if message is not None and decode_id(message["type"]) == "message":
                self._heard(message)


class _Resubscribe(Exception):
    """The shard subscriptions must be made again on the current slot map."""
