"""Fixtures for the bad-input tests: in-process workers with fast retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from input_helpers import StartWorker

from bananas import Registry, Worker, WorkerSettings
from bananas.core.retry import RetryPolicy


@pytest.fixture
async def start_worker(redis_url: str) -> AsyncIterator[StartWorker]:
    """``await start_worker(registry, routing_keys=("gpu",))``: a running worker (fast
    retries) that the fixture stops at the end of the test."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(registry: Registry, **settings: Any) -> Worker:
        fields: dict[str, Any] = {
            "redis_url": redis_url,
            "retry_policy": RetryPolicy(base=0.02, factor=1.0, cap=0.05, jitter=0.0),
            "shutdown_grace": 5.0,
            **settings,
        }
        worker = Worker(registry, WorkerSettings(**fields))
        task = asyncio.create_task(worker.run())
        running.append((worker, task))
        await asyncio.wait_for(worker.wait_ready(), 10)
        return worker

    yield start
    for worker, _ in running:
        worker.stop()
    for _, task in running:
        await stopped(task)


async def stopped(task: asyncio.Task[None], timeout: float = 30.0) -> None:
    """Wait for a stopped worker's ``run()`` to return, without ever hanging the suite:
    on timeout the task is cancelled (not awaited) and the test fails."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        import io

        stacks = io.StringIO()
        for other in asyncio.all_tasks():
            other.print_stack(limit=8, file=stacks)
        task.cancel()
        raise AssertionError(f"worker did not stop within {timeout}s; tasks:\n{stacks.getvalue()}")
    task.result()
