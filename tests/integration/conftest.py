"""Fixtures for integration tests: clients, in-process workers, CLI subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from support import CliRunner

from bananas import Client, Registry, Worker, WorkerSettings
from bananas.core.clock import SYSTEM_CLOCK, Clock
from bananas.core.retry import RetryPolicy

#: Test defaults: quick retries and shutdown so failures are fast to observe.
FAST_SETTINGS: dict[str, Any] = {
    "retry_policy": RetryPolicy(base=0.05, factor=2.0, cap=1.0, jitter=0.0),
    "shutdown_grace": 5.0,
    "lease_seconds": 10.0,
}

@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    with Client(redis_url) as c:
        yield c


class Workers:
    """Runs ``bananas.Worker`` instances in tasks of the test's event loop."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.tasks: dict[Worker, asyncio.Task[None]] = {}

    async def start(self, registry: Registry, *, clock: Clock = SYSTEM_CLOCK, **settings: Any) -> Worker:
        """``await workers.start(registry, routing_keys=("gpu",), concurrency=1)``; returns once
        the worker has made its first fetch."""
        fields = {f.name for f in dataclasses.fields(WorkerSettings)}
        unknown = set(settings) - fields
        assert not unknown, f"unknown WorkerSettings fields {unknown}"
        merged = {**FAST_SETTINGS, "redis_url": self.redis_url, **settings}
        if isinstance(merged.get("routing_keys"), str):
            merged["routing_keys"] = (merged["routing_keys"],)
        worker = Worker(registry, WorkerSettings(**merged), clock=clock)
        task = asyncio.create_task(worker.run(), name=f"test-worker-{len(self.tasks)}")
        self.tasks[worker] = task
        ready = asyncio.ensure_future(worker.wait_ready())
        done, _ = await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            task.result()  # raises the worker's error
            raise AssertionError("worker stopped before it was ready")
        assert ready in done, "worker did not become ready within 10 s"
        return worker

    async def stop(self, worker: Worker, timeout: float = 15) -> None:
        """Graceful stop; waits for ``run()`` to return and re-raises its error."""
        worker.stop()
        await asyncio.wait_for(self.tasks[worker], timeout)

    async def stop_all(self) -> None:
        for worker in self.tasks:
            worker.stop()
        for task in self.tasks.values():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[Workers]:
    """In-process workers; every one still running is stopped at teardown."""
    pool = Workers(redis_url)
    try:
        yield pool
    finally:
        await pool.stop_all()


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path, r: redis.Redis) -> Iterator[CliRunner]:
    """Runs ``bananas`` subprocesses; any still alive at teardown are killed (with their children)."""
    runner = CliRunner(cli_env, tmp_path, r)
    try:
        yield runner
    finally:
        runner.cleanup()
