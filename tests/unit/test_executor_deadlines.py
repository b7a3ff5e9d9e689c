"""Job timeouts on one shared deadline heap (Executor): the same behaviour as
``asyncio.timeout`` per job, without a timer per job."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bananas.core.job import Job
from bananas.worker.executor import Executor, JobTimeoutExceeded
from bananas.worker.registry import Handler


def _handler(func: Any) -> Handler:
    return Handler("h", func, asyncio.iscoroutinefunction(func))


JOB: Any = None  # the handlers below ignore their job


async def test_a_call_past_its_timeout_is_cancelled_and_reported() -> None:
    cancelled: list[bool] = []

    async def slow(_: Job) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    executor = Executor(2)
    started = time.monotonic()
    with pytest.raises(JobTimeoutExceeded, match=r"timeout of 0\.05 seconds"):
        await executor.call(_handler(slow), JOB, 0.05)
    assert time.monotonic() - started < 2
    assert cancelled == [True]
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    executor.shutdown()


async def test_a_sync_call_past_its_timeout_is_reported() -> None:
    executor = Executor(2)
    with pytest.raises(JobTimeoutExceeded):
        await executor.call(_handler(lambda _: time.sleep(0.3)), JOB, 0.05)
    executor.shutdown()


async def test_calls_within_their_timeout_return_and_leave_nothing_behind() -> None:
    async def quick(_: Job) -> int:
        await asyncio.sleep(0)
        return 7

    executor = Executor(2)
    for _ in range(80):  # 64 at a time, as a worker at concurrency 64 runs them
        results = await asyncio.gather(*(executor.call(_handler(quick), JOB, 300) for _ in range(64)))
        assert results == [7] * 64
    # Ended calls' entries do not pile up until their (300 s) deadline.
    assert len(executor._deadlines._heap) <= 200
    # A later, shorter timeout still fires on time.
    async def slow(_: Job) -> None:
        await asyncio.sleep(5)

    with pytest.raises(JobTimeoutExceeded):
        await executor.call(_handler(slow), JOB, 0.05)
    executor.shutdown()


async def test_deadlines_fire_in_order_whatever_order_they_were_added() -> None:
    ended: list[tuple[float, str]] = []

    async def sleeper(_: Job) -> None:
        await asyncio.sleep(10)

    async def one(timeout: float) -> None:
        try:
            await executor.call(_handler(sleeper), JOB, timeout)
        except JobTimeoutExceeded:
            ended.append((timeout, "timeout"))

    executor = Executor(2)
    await asyncio.gather(one(0.3), one(0.1), one(0.2))
    assert ended == [(0.1, "timeout"), (0.2, "timeout"), (0.3, "timeout")]
    executor.shutdown()


async def test_a_cancellation_from_outside_is_not_a_timeout() -> None:
    async def slow(_: Job) -> None:
        await asyncio.sleep(10)

    executor = Executor(2)
    task = asyncio.create_task(executor.call(_handler(slow), JOB, 5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    executor.shutdown()


def test_completed_at_cut_from_finished_at_is_the_whole_second_layout() -> None:
    """The result's ``completed_at`` is ``finished_at`` cut to whole seconds (formatted
    once per job): the same text ``format_seconds`` writes for that instant."""
    from bananas.core.clock import format_time, to_datetime
    from bananas.core.result import format_seconds, whole_seconds

    for ts in (0.0, 1.5, 1_764_000_000.25, 1_764_000_000.000001, 4_102_444_799.5):
        assert whole_seconds(format_time(to_datetime(ts))) == format_seconds(ts)
    assert whole_seconds("2026-12-03T13:14:26.5+02:00") == "2026-12-03T11:14:26Z"
