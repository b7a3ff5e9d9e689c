"""Helpers for the bad-input tests: snapshots of the whole keyspace, bounded waits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from bananas import Worker

StartWorker = Callable[..., Awaitable[Worker]]


def snapshot(r: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key with its serialized value: equal snapshots mean nothing was written."""
    return {key: r.dump(key) for key in r.scan_iter(count=1000)}  # type: ignore[misc]


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` (letting the loop run) until truthy, at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {value!r})")
        await asyncio.sleep(0.02)
