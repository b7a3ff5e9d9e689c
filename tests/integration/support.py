"""Helpers shared by the integration tests: bounded waits, CLI subprocesses, Redis peeks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

from bananas import Registry, Worker, WorkerSettings
from bananas.core.clock import SYSTEM_CLOCK, Clock
from bananas.core.retry import RetryPolicy

T = TypeVar("T")

#: Default bound for every wait in the suite.
WAIT = 10.0


def wait_until(predicate: Callable[[], T], timeout: float = WAIT, what: str = "condition", interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {value!r})")
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = WAIT, what: str = "condition", interval: float = 0.02
) -> T:
    """Async ``wait_until``: lets the event loop (and in-process workers) run between looks."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {value!r})")
        await asyncio.sleep(interval)


def job_record(r: redis.Redis, job_id: str) -> dict[str, Any] | None:
    import json

    raw = r.get(f"bananas:job:{job_id}")
    return None if raw is None else json.loads(raw)  # type: ignore[arg-type]


def status_of(r: redis.Redis, job_id: str) -> str | None:
    rec = job_record(r, job_id)
    return None if rec is None else rec.get("status")


def strings(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def ran(r: redis.Redis, key: str = "test:ran") -> list[list[str]]:
    """Entries appended by tests/apps/basic.py handlers, split on '|'."""
    return [entry.split("|") for entry in strings(r.lrange(key, 0, -1))]


def bananas_argv() -> list[str]:
    """The installed ``bananas`` console script next to this interpreter, else ``python -m bananas``."""
    script = Path(sys.executable).with_name("bananas")
    if script.exists():
        return [str(script)]
    found = shutil.which("bananas")
    return [found] if found else [sys.executable, "-m", "bananas"]


class CliRunner:
    """Starts ``bananas`` subprocesses against the test server; kills leftovers in teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path, r: redis.Redis) -> None:
        self.env = env
        self.log_dir = log_dir
        self.r = r
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command (submit, queues, a worker that should refuse to start)."""
        return subprocess.run(
            [*bananas_argv(), *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def worker(
        self, *args: str, app: str = "apps.basic:registry", pool: str = "", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``bananas worker APP ARGS`` in its own process group; output goes to a log file."""
        log = self.log_dir / f"worker-{len(self.procs)}-{pool or 'x'}.log"
        full_env = {**self.env, "TEST_POOL": pool, **(env or {})}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*bananas_argv(), "worker", app, *args],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        self._logs[proc.pid] = log
        return proc

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start a long-running ``bananas`` command (exporter, scheduler) like ``worker``."""
        log = self.log_dir / f"bananas-{len(self.procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*bananas_argv(), *args], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        self._logs[proc.pid] = log
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return self._logs[proc.pid].read_text(errors="replace")

    def worker_ids(self, pid: int | None = None) -> list[str]:
        """Ids of workers that announced themselves (optionally only process ``pid``'s)."""
        ids = strings(self.r.zrange("bananas:workers", 0, -1))
        if pid is None:
            return ids
        return [i for i in ids if strings([self.r.hget(f"bananas:worker:{i}", "pid") or b""])[0] == str(pid)]

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
        """Until the worker process announced itself in Redis (it fetches right after)."""

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited early with {proc.returncode}:\n{self.output(proc)}")
            return bool(self.worker_ids(proc.pid))

        wait_until(ready, timeout, what=f"worker pid {proc.pid} to start")

    def wait_exit(self, proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker pid {proc.pid} did not exit in {timeout}s:\n{self.output(proc)}") from None

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
            # The supervisor's children share its process group; make sure none survive.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


class Recorder:
    """A registry whose handlers append ``(label, id, routing key, priority, payload)`` to
    ``runs``. ``names`` are the job names handled (all share the recording function)."""

    def __init__(self, label: str = "", names: tuple[str, ...] = ("task",)) -> None:
        self.label = label
        self.runs: list[tuple[str, str, str, str, Any]] = []
        self.registry = Registry()
        for name in names:
            self.registry.add(name, self._run)

    def _run(self, job: Any) -> None:
        self.runs.append((self.label, job.id, job.routing_key, job.priority.value, job.payload))

    @property
    def payloads(self) -> list[Any]:
        return [run[4] for run in self.runs]

    @property
    def ids(self) -> list[str]:
        return [run[1] for run in self.runs]


#: Test defaults: quick retries and shutdown so failures are fast to observe.
FAST_SETTINGS: dict[str, Any] = {
    "retry_policy": RetryPolicy(base=0.05, factor=2.0, cap=1.0, jitter=0.0),
    "shutdown_grace": 5.0,
    "lease_seconds": 10.0,
}


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
