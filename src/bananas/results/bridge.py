"""Lets the blocking ``Client`` reuse the asyncio result waiter.

The first wait starts one daemon thread with its own event loop and async Redis client;
every later wait of that client runs there, so all of them share one subscription.

A ``Client`` that is never closed stops that thread quietly when it is garbage
collected or when the program ends (``weakref.finalize``): the subscription is closed
on the thread's own loop first, so nothing is left pending to complain at exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis

from bananas.redis import connection, keys
from bananas.redis.keys import KeyLayout
from bananas.results.waiter import ResultWaiter

T = TypeVar("T")


@dataclass
class _Resources:
    """What the background thread owns; shared with the finalizer (which must not hold
    the ``BackgroundWaiter`` itself)."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    client: aioredis.Redis | None = None
    waiter: ResultWaiter | None = None


class BackgroundWaiter:
    def __init__(self, redis_url: str, layout: KeyLayout = keys.STANDALONE) -> None:
        self._url = redis_url
        self._layout = layout
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="bananas-results", daemon=True)
        thread.start()
        self._resources = _Resources(loop, thread)
        self._finalizer = weakref.finalize(self, _shutdown, self._resources)

    def run(self, work: Callable[[aioredis.Redis, ResultWaiter], Awaitable[T]]) -> T:
        """Run ``work(async_client, waiter)`` on the background loop and block for its result."""
        return self.start(work).result()

    def start(self, work: Callable[[aioredis.Redis, ResultWaiter], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Start ``work(async_client, waiter)`` on the background loop; returns at once."""
        resources = self._resources

        async def call() -> T:
            if resources.client is None or resources.waiter is None:
                resources.client = connection.async_client(self._url)
                resources.waiter = ResultWaiter(resources.client, self._layout)
            return await work(resources.client, resources.waiter)

        coro: Coroutine[Any, Any, T] = call()
        return asyncio.run_coroutine_threadsafe(coro, resources.loop)

    def close(self) -> None:
        self._finalizer()


def _shutdown(resources: _Resources) -> None:
    """Close the subscription and the client on their loop, then stop the thread."""
    loop = resources.loop

    async def close_all() -> None:
        if resources.waiter is not None:
            await resources.waiter.aclose()
        if resources.client is not None:
            await resources.client.aclose()

    if loop.is_closed():
        return
    if loop.is_running() and threading.current_thread() is not resources.thread:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        resources.thread.join(timeout=5)
    elif loop.is_running():  # collected on its own thread: stop; the thread ends there
        loop.call_soon(loop.stop)
        return
    if not loop.is_running():
        loop.close()
