"""Lets the blocking ``Client`` reuse the asyncio result waiter.

The first wait starts one daemon thread with its own event loop and async Redis client;
every later wait of that client runs there, so all of them share one subscription.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import redis.asyncio as aioredis

from bananas.redis import connection
from bananas.results.waiter import ResultWaiter

T = TypeVar("T")


class BackgroundWaiter:
    def __init__(self, redis_url: str) -> None:
        self._url = redis_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bananas-results", daemon=True)
        self._thread.start()
        self._client: aioredis.Redis | None = None
        self._waiter: ResultWaiter | None = None

    def run(self, work: Callable[[aioredis.Redis, ResultWaiter], Awaitable[T]]) -> T:
        """Run ``work(async_client, waiter)`` on the background loop and block for its result."""

        async def call() -> T:
            if self._client is None or self._waiter is None:
                self._client = connection.async_client(self._url)
                self._waiter = ResultWaiter(self._client)
            return await work(self._client, self._waiter)

        coro: Coroutine[Any, Any, T] = call()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        async def shutdown() -> None:
            if self._waiter is not None:
                await self._waiter.aclose()
            if self._client is not None:
                await self._client.aclose()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()
