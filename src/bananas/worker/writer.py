"""Batches the worker's state changes into pipelines.

Every state change goes through one FIFO: a job's ``start`` is always sent before its
``ack``, and under load many jobs' changes share one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bananas.redis.broker import Broker
from bananas.redis.scripts import Call
from bananas.worker.backoff import Backoff, is_connection_error

log = logging.getLogger("bananas.worker")

MAX_BATCH = 256


class Writer:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._pending: list[tuple[Call, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._closed = False

    def send(self, call: Call) -> asyncio.Future[Any]:
        """Queue ``call``; the future resolves with the script's reply once it ran."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future))
        self._wake.set()
        return future

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[:MAX_BATCH]
            try:
                replies = await self._broker.run_many([call for call, _ in batch])
            except Exception as exc:
                if not is_connection_error(exc):
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    del self._pending[: len(batch)]
                    continue
                # Redis is away: keep the batch and try again. The scripts check the lease
                # token, so a change that did land before the cut is not applied twice.
                log.warning("redis unavailable while writing job state, retrying: %s", exc)
                await backoff.sleep()
                continue
            backoff.reset()
            del self._pending[: len(batch)]
            for (_, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def close(self) -> None:
        """Stop once everything queued so far is written."""
        self._closed = True
        self._wake.set()
