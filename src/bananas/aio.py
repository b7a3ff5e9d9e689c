"""Small asyncio helpers.

``asyncio.wait_for`` on Python 3.11 can swallow a cancellation that arrives just as the
awaited thing completes; in a loop that waits with a timeout again and again, that
leaves a task which never stops. ``asyncio.timeout`` does not have that flaw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def raise_if_cancelling() -> None:
    """Raise ``CancelledError`` if this task has been asked to stop.

    For loops that talk to Redis: on Python 3.11, redis-py's own use of
    ``asyncio.wait_for`` can swallow the cancellation that was meant to end the loop;
    checking at the top of every turn ends it anyway.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def within(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``await awaitable`` with a time limit (raises TimeoutError), cancellation-safe."""
    async with asyncio.timeout(timeout):
        return await awaitable
