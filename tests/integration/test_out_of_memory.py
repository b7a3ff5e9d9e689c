"""Redis out of memory (maxmemory under noeviction), seen by the worker's parts: the
writer keeps and retries a refused write, lease extensions still succeed, and a dequeue is
refused whole, before anything is popped (issue 9, item 3)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bananas.core.limits import FleetLimits
from bananas.core.priority import Priority
from bananas.core.routing import QueueRef
from bananas.core.selection import DequeuePlan, Source
from bananas.embedded import EmbeddedServer
from bananas.redis import calls, connection, keys
from bananas.redis.broker import Broker
from bananas.redis.runner import SyncRunner
from bananas.redis.scripts import compat_sources
from bananas.worker.pressure import MemoryPressure
from bananas.worker.writer import Writer


@pytest.fixture
def full_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path / "oom", extra_args=("--maxmemory-policy", "noeviction"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_full_redis_refuses_deliveries_keeps_leases_and_writes_are_retried(
    full_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    r = redis.Redis.from_url(full_server.url)
    record = json.dumps({"id": "j1", "name": "task", "created_at": "2030-01-01T00:00:00Z", "status": "processing"})
    r.set(keys.job("j1"), record)
    r.hset(keys.LEASE_OWNERS, "j1", "tok")
    r.zadd(keys.LEASES, {"j1": 1})
    queue = keys.route_queue("default", Priority.NORMAL)
    r.lpush(queue, "waiting")
    client = connection.async_client(full_server.url)
    broker = Broker(client)
    await broker.load_scripts()
    pressure = MemoryPressure()
    writer = Writer(broker, pressure)
    runner = asyncio.create_task(writer.run())
    caplog.set_level(logging.INFO, logger="bananas.worker")
    try:
        r.config_set("maxmemory", 1)  # full: every command that may grow memory is refused
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            r.set("probe", "x")
        assert not await broker.memory_available()
        started = writer.send(
            calls.start("j1", "tok", record.replace("processing", "processing ").encode(), layout=keys.STANDALONE)
        )
        await asyncio.sleep(1.5)
        assert not started.done(), "a refused write must be kept, not failed"
        assert pressure.full

        # The lease is still extended (to the server's time + the lease length), by the
        # flagged script and by its flag-less form (what a server without script flags runs).
        def server_ms() -> int:
            seconds, micros = r.time()
            return seconds * 1000 + micros // 1000

        before = server_ms()
        assert await broker.run(calls.extend(30_000, [("j1", "tok")], layout=keys.STANDALONE)[0]) == []
        deadline = r.zscore(keys.LEASES, "j1")
        assert deadline is not None and 0 <= deadline - (before + 30_000) < 2000
        compat = SyncRunner(r)
        compat.compat = True
        for source in compat_sources():
            r.script_load(source)
        before = server_ms()
        assert compat.run(calls.extend(60_000, [("j1", "tok"), ("gone", "x")], layout=keys.STANDALONE)[0]) == [b"gone"]
        deadline = r.zscore(keys.LEASES, "j1")
        assert deadline is not None and 0 <= deadline - (before + 60_000) < 2000
        assert r.zscore(keys.LEASES, "gone") is None
        # A dequeue is refused whole: nothing popped, nothing leased.
        plan = DequeuePlan.build([Source(QueueRef("default", Priority.NORMAL))], FleetLimits())
        take = calls.dequeue(plan, FleetLimits(), [-1], lease_ms=30_000, token="t2", count=5, layout=keys.STANDALONE)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            await broker.dequeue(take)
        assert r.lrange(queue, 0, -1) == [b"waiting"] and r.hget(keys.LEASE_OWNERS, "waiting") is None

        r.config_set("maxmemory", 0)  # memory available again
        assert await asyncio.wait_for(started, 5) == 1
        assert r.get(keys.job("j1")).endswith(b'processing "}')  # type: ignore[union-attr]
        assert await pressure.check(broker)
        assert not pressure.full
    finally:
        writer.close()
        await runner
        await broker.close()
        await client.aclose()
        r.close()
    said = [rec.getMessage() for rec in caplog.records if "out of memory" in rec.getMessage()]
    assert len(said) == 2, said  # one line when it began (with the fix), one when it ended
    assert "raise Redis' maxmemory" in said[0] and "accepts writes again" in said[1]
