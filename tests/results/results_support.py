"""Helpers for the result tests: workers in tasks or threads, and server introspection."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import redis

from bananas import Registry, Worker, WorkerSettings
from bananas.core.retry import RetryPolicy

#: ``await start_worker(registry, **settings)``: the fixture of conftest.py.
StartWorker = Callable[..., Awaitable[Worker]]

#: Quick retries and shutdown so failures and stops are fast to observe.
FAST: dict[str, Any] = {
    "retry_policy": RetryPolicy(base=0.02, factor=1.0, cap=0.05, jitter=0.0),
    "shutdown_grace": 5.0,
}


def settings(redis_url: str, **overrides: Any) -> WorkerSettings:
    return WorkerSettings(**{**FAST, "redis_url": redis_url, **overrides})


class ThreadWorker:
    """A ``bananas.Worker`` on its own event loop in a thread, for tests that block (the
    synchronous ``Client``, subprocesses) while jobs run."""

    def __init__(self, registry: Registry, worker_settings: WorkerSettings) -> None:
        self.worker = Worker(registry, worker_settings)
        self._loop = asyncio.new_event_loop()
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="results-test-worker", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            task = asyncio.create_task(self.worker.run())
            ready = asyncio.ensure_future(self.worker.wait_ready())
            await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            self._ready.set()
            await task

        try:
            self._loop.run_until_complete(run())
        except BaseException as exc:  # reported by stop()
            self._error = exc
        finally:
            self._ready.set()
            self._loop.close()

    def start(self) -> ThreadWorker:
        self._thread.start()
        assert self._ready.wait(15), "worker thread did not become ready"
        assert self._thread.is_alive(), f"worker thread died: {self._error!r}"
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self.worker.stop)
            self._thread.join(20)
        assert not self._thread.is_alive(), "worker thread did not stop"
        if self._error is not None:
            raise self._error


@contextlib.contextmanager
def thread_worker(registry: Registry, worker_settings: WorkerSettings) -> Iterator[ThreadWorker]:
    worker = ThreadWorker(registry, worker_settings).start()
    try:
        yield worker
    finally:
        worker.stop()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {value!r})")
        time.sleep(0.02)


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {value!r})")
        await asyncio.sleep(0.02)


def pubsub_clients(r: redis.Redis) -> list[dict[str, Any]]:
    """``CLIENT LIST TYPE pubsub``: the server's connections in subscribe mode."""
    return list(r.client_list(_type="pubsub"))


def result_subscriptions(r: redis.Redis) -> int:
    """How many ``bananas:result:notify:*`` channels have a subscriber right now."""
    return len(r.pubsub_channels("bananas:result:notify:*"))


def calls(r: redis.Redis, command: str) -> int:
    """How many times the server has run ``command`` (INFO commandstats)."""
    stats = r.info("commandstats")
    return int(stats.get(f"cmdstat_{command.lower()}", {}).get("calls", 0))
