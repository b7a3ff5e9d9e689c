"""Helpers for the queue selection, limits, parking and worker mode tests.

In-process workers run as tasks of the test's event loop, each with its own Redis
connections, so several of them are several workers as far as Redis is concerned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

from bananas import Job, Registry, Worker, WorkerSettings
from bananas.core.retry import RetryPolicy

T = TypeVar("T")

WAIT = 10.0

#: Quick retries and shutdown so that tests do not wait on defaults meant for production.
FAST: dict[str, Any] = {
    "retry_policy": RetryPolicy(base=0.05, factor=2.0, cap=1.0, jitter=0.0),
    "shutdown_grace": 5.0,
    "lease_seconds": 10.0,
}


async def eventually(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = WAIT, what: str = "condition", interval: float = 0.02
) -> T:
    """Poll ``predicate`` (letting in-process workers run) until truthy, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {value!r})")
        await asyncio.sleep(interval)


def record(r: redis.Redis, job_id: str) -> dict[str, Any]:
    raw = r.get(f"bananas:job:{job_id}")
    assert raw is not None, f"no record for job {job_id}"
    return json.loads(raw)  # type: ignore[no-any-return]


def command_calls(r: redis.Redis, command: str) -> int:
    """Calls of ``command`` on the server since the last CONFIG RESETSTAT (scripts' own
    calls included): how we see that a job was pushed back, or a worker spins."""
    stats = r.info("commandstats")
    return int(stats.get(f"cmdstat_{command.lower()}", {}).get("calls", 0))


def shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()}


def rate_of(starts: list[float]) -> float:
    """Jobs per second over a run: (n - 1) / (last start - first start)."""
    ordered = sorted(starts)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def busiest_window(starts: list[float], seconds: float = 1.0) -> int:
    """The most starts in any window of ``seconds``: a burst shows here."""
    ordered = sorted(starts)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while t - ordered[first] > seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


class Probe:
    """Handlers that count how many of them run at once, per routing key, in Redis
    (INCR on start, DECR on exit), so that workers in other processes count too."""

    def __init__(self, redis_url: str, prefix: str = "test:probe") -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self._prefix = prefix
        self._lock = threading.Lock()
        self.peak: dict[str, int] = {}
        self.starts: list[tuple[float, str, str]] = []  # (time, routing key, job id)

    def enter(self, job: Job) -> None:
        now = time.time()
        running = int(self._redis.incr(f"{self._prefix}:running:{job.routing_key}"))
        with self._lock:
            self.starts.append((now, job.routing_key, job.id))
            self.peak[job.routing_key] = max(self.peak.get(job.routing_key, 0), running)

    def leave(self, job: Job) -> None:
        self._redis.decr(f"{self._prefix}:running:{job.routing_key}")

    def sleeper(self, seconds: float) -> Callable[[Job], None]:
        """A sync handler (it runs in the worker's threads) that holds its slot ``seconds``."""

        def handler(job: Job) -> None:
            self.enter(job)
            try:
                time.sleep(seconds)
            finally:
                self.leave(job)

        return handler

    def running_now(self, routing_key: str) -> int:
        return int(self._redis.get(f"{self._prefix}:running:{routing_key}") or 0)

    def close(self) -> None:
        self._redis.close()


class Pool:
    """In-process ``bananas.Worker``s; all still running are stopped at teardown."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.tasks: dict[Worker, asyncio.Task[None]] = {}

    async def start(self, registry: Registry, **settings: Any) -> Worker:
        fields = {f.name for f in dataclasses.fields(WorkerSettings)}
        unknown = set(settings) - fields
        assert not unknown, f"unknown WorkerSettings fields {unknown}"
        merged = {**FAST, "redis_url": self.redis_url, **settings}
        return await self.start_with(registry, WorkerSettings(**merged))

    async def start_env(self, registry: Registry, env: dict[str, str]) -> Worker:
        """Settings parsed from environment variables, as ``bananas worker`` does."""
        settings = WorkerSettings.from_env({"REDIS_URL": self.redis_url, **env})
        return await self.start_with(registry, settings.with_overrides(**FAST))

    async def start_with(self, registry: Registry, settings: WorkerSettings) -> Worker:
        worker = Worker(registry, settings)
        task = asyncio.create_task(worker.run(), name=f"selection-worker-{len(self.tasks)}")
        self.tasks[worker] = task
        ready = asyncio.ensure_future(worker.wait_ready())
        done, _ = await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            task.result()
            raise AssertionError("worker stopped before it was ready")
        assert ready in done, "worker did not become ready within 10 s"
        return worker

    async def stop(self, worker: Worker) -> None:
        worker.stop()
        done, _ = await asyncio.wait({self.tasks[worker]}, timeout=15)
        if not done:
            import io

            stacks = io.StringIO()
            for task in asyncio.all_tasks():
                task.print_stack(limit=6, file=stacks)
            raise AssertionError(f"worker did not stop in 15 s; tasks:\n{stacks.getvalue()}")

    async def stop_all(self) -> None:
        for worker in self.tasks:
            worker.stop()
        for task in self.tasks.values():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=15)


def bananas_argv() -> list[str]:
    script = Path(sys.executable).with_name("bananas")
    if script.exists():
        return [str(script)]
    found = shutil.which("bananas")
    return [found] if found else [sys.executable, "-m", "bananas"]


def run_cli(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one ``bananas`` command in a subprocess (never a long-lived worker)."""
    return subprocess.run([*bananas_argv(), *args], env=env, capture_output=True, text=True, timeout=timeout)


def invoke(redis_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a ``bananas`` command in this process (click's test runner): the same code as
    the console script without a second of interpreter start-up per call."""
    from click.testing import CliRunner

    from bananas.cli.main import cli

    result = CliRunner().invoke(cli, list(args), env={"REDIS_URL": redis_url, **(env or {})}, prog_name="bananas")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["bananas", *args], result.exit_code, result.stdout, result.stderr)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Assert the command failed with a single 'bananas: error: ...' line; return it."""
    assert result.returncode != 0, f"expected failure, got 0: {result.stdout!r}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert lines[0].startswith("bananas: error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]
