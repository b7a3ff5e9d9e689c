"""Fixtures for the result tests: in-process workers (tasks of the test's loop)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import results_app
from results_support import settings

from bananas import Registry, Worker

HERE = Path(__file__).resolve().parent

from results_support import StartWorker  # noqa: E402


@pytest.fixture
async def start_worker(redis_url: str) -> AsyncIterator[StartWorker]:
    """``await start_worker(concurrency=50)``: a running worker with ``results_app``'s
    handlers (or ``registry=``), stopped at the end of the test."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(registry: Registry | None = None, **overrides: Any) -> Worker:
        worker = Worker(registry or results_app.registry, settings(redis_url, **overrides))
        task = asyncio.create_task(worker.run())
        running.append((worker, task))
        ready = asyncio.ensure_future(worker.wait_ready())
        done, _ = await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            task.result()
        assert ready in done, "worker did not become ready within 10 s"
        return worker

    yield start
    for worker, _ in running:
        worker.stop()
    if not running:
        return
    _, pending = await asyncio.wait([task for _, task in running], timeout=15)
    if pending:
        stacks = []
        for t in asyncio.all_tasks():
            stacks.append(f"{t.get_name()}: {t.get_coro()!r}")
            for frame in t.get_stack(limit=8):
                stacks.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        for task in pending:
            task.cancel()
        raise AssertionError("a worker did not stop within 15 s:\n" + "\n".join(stacks))


@pytest.fixture
def results_env(cli_env: dict[str, str]) -> dict[str, str]:
    """``cli_env`` plus this directory on PYTHONPATH (``results_app:registry``)."""
    env = dict(cli_env)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env
