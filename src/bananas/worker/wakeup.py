"""Wake-up signals over Pub/Sub, so an idle worker neither polls nor sleeps through work.

Producers publish on ``bananas:route:{key}:notify`` when a job becomes ready. The
fetcher clears its event *before* it looks at the queues, so a publish that lands while
it looks still wakes it: no job can slip between "queues empty" and "wait".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

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
    ) -> None:
        """``channels`` maps each channel name to the event it sets; ``on_parked`` is
        called when a message says a job was parked (see park.lua); ``on_data`` maps
        further channels to a callback that gets each message's text; ``on_subscribed`` is
        called each time the subscription is confirmed (``Worker.wait_ready`` uses it)."""
        self._client = client
        self._channels = dict(channels)
        self._on_data = dict(on_data or {})
        self._on_parked = on_parked
        self._on_message = on_message
        self._on_subscribed = on_subscribed

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._channels, *self._on_data)
                if self._on_subscribed is not None:
                    self._on_subscribed()
                # Anything published while we were not subscribed is unknown: look now.
                for name, event in self._channels.items():
                    if self._on_message is not None:
                        self._on_message(name)
                    event.set()
                backoff.reset()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        channel = message["channel"]
                        name = decode_id(channel)
                        listener = self._on_data.get(name)
                        if listener is not None:
                            listener(decode_id(message.get("data")))
                            continue
                        if self._on_message is not None:
                            self._on_message(name)
                        target = self._channels.get(name)
                        if target is not None:
                            target.set()
                        if self._on_parked is not None and message.get("data") in (b"parked", "parked"):
                            self._on_parked()
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
