"""Scenarios 3 and 4: the Redis server restarted mid-load, and the connection cut by a proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bananas import Client
from bananas.embedded import EmbeddedServer
from faults.harness import (
    SOAK,
    ChaosProxy,
    Fleet,
    Submitter,
    assert_quiet,
    check,
    cpu_seconds,
    job_specs,
    runs,
    scaled,
    submit_all,
    wait_completed,
    wait_until,
    workers_ready,
)

pytestmark = pytest.mark.timeout(1800 if SOAK else 180)

LEASE = 2.0


@pytest.fixture
def aof_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A private server with append-only persistence, restartable on the same port."""
    args: tuple[str, ...] = ("--appendfsync", "always") if SOAK else ()
    server = EmbeddedServer(tmp_path / "aof", appendonly=True, extra_args=args)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_redis_restart(fleet: Fleet, aof_server: EmbeddedServer, store: redis.Redis, tmp_path: Path):
    """Scenario 3: workers and clients reconnect by themselves; every accepted job runs."""
    url = aof_server.url
    sut = redis.Redis.from_url(url)
    procs = [fleet.worker(url, concurrency=6, lease=LEASE) for _ in range(2)]
    procs.append(fleet.worker(url, processes=2, concurrency=6, lease=LEASE, name="pool"))
    wait_until(workers_ready(sut, 4), 30, "4 worker processes to announce themselves")

    started = time.monotonic()
    with Client(url) as client:
        ids = submit_all(client, job_specs(scaled(1500), ms=(10, 80)))
        submitter = Submitter(client, job_specs(scaled(1500), ms=(10, 80))).start()
        restarts = scaled(2)
        step = scaled(3000) // (restarts + 2)
        for n in range(restarts):
            wait_until(lambda n=n: len(runs(store)) >= (n + 1) * step, 60, "progress before a restart")
            # Graceful stop (the AOF is flushed); in soak mode also kill -9 with fsync always.
            if SOAK and n % 2:
                aof_server.kill()
            else:
                aof_server.stop()
            time.sleep(1.5)
            aof_server.start()
        assert len(runs(store)) < scaled(3000), "the load finished before the restarts: raise the job count"
        submitter.join(120)
        ids += submitter.accepted
        wait_completed(sut, ids, timeout=120 * (SOAK + 1))
    dead = [p.name for p in procs if not p.alive()]
    assert dead == [], f"worker processes exited during the restarts: {dead}"
    outcome = check("redis_restart", sut, store, ids, started, restarts=restarts, submit_errors=submitter.failures)
    assert outcome.lost == 0
    assert_quiet(sut)
    sut.close()


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def test_connection_cut(fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis):
    """Scenario 4: connections dropped (reset) and stalled (paused) for some seconds:
    no worker exits, none spins while Redis is away, every accepted job runs."""
    proxy = ChaosProxy(r.connection_pool.connection_kwargs["port"]).start()
    try:
        procs = [fleet.worker(proxy.url, concurrency=6, lease=LEASE) for _ in range(2)]
        procs.append(fleet.worker(proxy.url, processes=2, concurrency=6, lease=LEASE, name="pool"))
        wait_until(workers_ready(r, 4), 30, "4 worker processes to announce themselves")
        pids = [procs[0].pid, procs[1].pid, *procs[2].children()]
        outage = 4.0
        cpu_notes: dict[str, str] = {}

        started = time.monotonic()
        with Client(proxy.url) as client:
            ids = submit_all(client, job_specs(scaled(1500), ms=(10, 80)))
            submitter = Submitter(client, job_specs(scaled(1000), ms=(10, 80))).start()
            rounds = scaled(1)
            step = scaled(2500) // (2 * rounds + 2)
            for n in range(2 * rounds):
                mode = ("drop", "pause")[n % 2]
                wait_until(lambda n=n: len(runs(store)) >= step * (n + 1), 60, "progress before a cut")
                if mode == "drop":
                    proxy.drop()
                else:
                    proxy.pause()
                cpu_before = _cpu(pids)
                time.sleep(outage)
                used = _cpu(pids) - cpu_before
                if mode == "drop":
                    proxy.restore()
                else:
                    proxy.resume()
                cpu_notes[mode] = f"{used / len(pids) / outage:.1%}"
                # A busy loop would burn a whole core (100%); reconnecting with backoff
                # costs a few percent. The bound is loose on purpose (shared CI cores).
                assert used / len(pids) < 0.3 * outage, f"workers used {used:.2f}s CPU during a {mode}"
            assert len(runs(store)) < scaled(2500), "the load finished before the cuts: raise the job count"
            submitter.join(120)
            ids += submitter.accepted
            wait_completed(r, ids, timeout=120 * (SOAK + 1))
        dead = [p.name for p in procs if not p.alive()]
        assert dead == [], f"worker processes exited during the cuts: {dead}"
        assert len(procs[2].children()) == 2
        outcome = check(
            "connection_cut",
            r,
            store,
            ids,
            started,
            cpu_drop=cpu_notes["drop"],
            cpu_pause=cpu_notes["pause"],
            submit_errors=submitter.failures,
        )
        assert outcome.lost == 0
        assert_quiet(r)
    finally:
        proxy.stop()
