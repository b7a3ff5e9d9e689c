"""Issue 9 item 5: a Redis stall longer than the lease. A lease starts when the server
grants it, not when the worker sent the request, so a request that waited in a frozen
server never arrives with its deadline already behind it."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from bananas import Client, Priority
from bananas.config import WorkerSettings
from bananas.core.clock import SYSTEM_CLOCK
from bananas.embedded import EmbeddedServer
from bananas.redis import keys
from bananas.redis.broker import Broker
from bananas.worker.fetcher import Fetcher
from bananas.worker.heartbeat import LeaseKeeper
from faults.harness import (
    ROUTING_KEYS,
    Fleet,
    assert_quiet,
    check,
    submit_all,
    wait_completed,
    wait_until,
    workers_ready,
)

pytestmark = pytest.mark.timeout(120)

LEASE = 2.0


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A server of this test alone: it is frozen with SIGSTOP (by its PID)."""
    server = EmbeddedServer(tmp_path / "stalled").start()
    try:
        yield server
    finally:
        assert server.process is not None
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.kill()


def _freeze(server: EmbeddedServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)


def _thaw(server: EmbeddedServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)


async def test_lease_granted_after_a_stall_starts_at_the_grant(private_server: EmbeddedServer) -> None:
    """Dequeue and lease extension sent to a frozen server: once it runs them, each lease
    still has its full length ahead (before: deadline = send time + lease, long past)."""
    r = redis.Redis.from_url(private_server.url)
    client = aioredis.Redis.from_url(private_server.url)
    broker = Broker(client)
    try:
        await broker.load_scripts()
        settings = WorkerSettings(redis_url=private_server.url, routing_keys=("gpu",), lease_seconds=1.0)
        fetcher = Fetcher(broker, settings, None, SYSTEM_CLOCK)
        await fetcher.refresh_if_due()
        r.lpush(keys.route_queue("gpu", Priority.NORMAL), "job-a", "job-b")

        _freeze(private_server)
        fetch = asyncio.create_task(fetcher.fetch(1, {}, "token-1"))
        await asyncio.sleep(2.5)  # well past the 1 s lease
        _thaw(private_server)
        thawed_ms = time.time() * 1000
        _, taken = await asyncio.wait_for(fetch, 10)
        assert [job_id for _, job_id, _ in taken] == ["job-a"]
        deadline = r.zscore(keys.LEASES, "job-a")
        assert deadline is not None and deadline >= thawed_ms + 1000 - 250, (
            f"lease granted after the stall ends {(thawed_ms - deadline) / 1000:.1f}s in the past"
        )

        held = {"job-a": "token-1"}
        keeper = LeaseKeeper(broker, SYSTEM_CLOCK, 1.0, lambda: held, lambda _: None, "w1", {})
        _freeze(private_server)
        beat = asyncio.create_task(keeper.beat())
        await asyncio.sleep(2.5)
        _thaw(private_server)
        thawed_ms = time.time() * 1000
        await asyncio.wait_for(beat, 10)
        deadline = r.zscore(keys.LEASES, "job-a")
        assert deadline is not None and deadline >= thawed_ms + 1000 - 250, "an extension after a stall lapsed at once"
    finally:
        await broker.close()
        await client.aclose()
        r.close()


def _submit_some(url: str, n: int, out: list[str]) -> None:
    with Client(url) as client:
        for i in range(4):
            out.append(client.submit_job("work", {"ms": 50}, routing_key=ROUTING_KEYS[(n + i) % len(ROUTING_KEYS)]))


def test_redis_stall_longer_than_the_lease(
    fleet: Fleet, private_server: EmbeddedServer, store: redis.Redis, tmp_path: Path
) -> None:
    """The server frozen 10 s under a 2 s lease while jobs run and scheduled jobs fall
    due: after it resumes every job runs exactly once (none lost, none duplicated)."""
    url = private_server.url
    sut = redis.Redis.from_url(url)
    for _ in range(2):
        fleet.worker(url, concurrency=6, lease=LEASE)
    wait_until(workers_ready(sut, 2), 30, "2 workers")
    started = time.monotonic()
    with Client(url) as client:
        # Running when the server freezes: one 1.5 s job per slot. Waiting behind them:
        # short jobs, which the workers ask for while the server is frozen (the slots
        # free up 1.5 s into the freeze), and jobs scheduled to fall due during it.
        slots = 2 * 6
        running = [("work", ROUTING_KEYS[i % len(ROUTING_KEYS)], Priority.HIGH, {"ms": 1500}) for i in range(slots)]
        waiting = [("work", ROUTING_KEYS[i % len(ROUTING_KEYS)], Priority.LOW, {"ms": 50}) for i in range(40)]
        ids = submit_all(client, running)
        wait_until(lambda: sut.zcard(keys.LEASES) >= slots, 10, "every slot to run a long job")
        ids += submit_all(client, waiting)
        ids += [
            client.schedule_job("work", {"ms": 50}, delay=1 + (i % 8), routing_key=ROUTING_KEYS[i % len(ROUTING_KEYS)])
            for i in range(16)
        ]
        _freeze(private_server)
        # Jobs submitted during the freeze (each thread's first submit waits in the frozen
        # server next to the workers' own dequeues).
        late: list[str] = []
        threads = [threading.Thread(target=_submit_some, args=(url, n, late)) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(10)
        _thaw(private_server)
        for thread in threads:
            thread.join(30)
        ids += late
        assert len(late) == 8 * 4
        wait_completed(sut, ids, timeout=60)
    outcome = check("redis_stall", sut, store, ids, started, stall_seconds=10, lease_seconds=LEASE)
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    assert_quiet(sut)
    sut.close()
