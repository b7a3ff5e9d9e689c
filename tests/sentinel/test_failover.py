"""kill -9 of the Sentinel master under load: producers and workers on several routing
keys follow the new master within seconds, no worker hangs, and with
``BANANAS_WAIT_REPLICAS=1`` no job whose submit returned is lost; only jobs in flight at
the kill may run twice. Printed like the fault suite (submitted, completed, lost,
duplicated)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from faults.harness import (
    Fleet,
    Submitter,
    check,
    job_specs,
    runs,
    submit_all,
    wait_completed,
    wait_until,
    workers_ready,
)

from bananas import Client
from sentinel.group import SentinelGroup

pytestmark = pytest.mark.timeout(150)

#: Worker processes and their concurrency: jobs in flight at the kill are at most this many.
WORKERS, CONCURRENCY = 3, 6
#: Longer than a failover, so leases held across it are renewed, not recovered.
LEASE = 8.0


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    """The instrument: where handlers record their runs (never the servers under test)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fleet(cli_env: dict[str, str], redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    pool = Fleet(cli_env, redis_url, tmp_path)
    try:
        yield pool
    finally:
        pool.cleanup()


def test_master_killed_under_load(sentinel_group: SentinelGroup, fleet: Fleet, store: redis.Redis):
    group = sentinel_group
    url = group.url
    old = group.current_master()
    survivor = group.replica
    assert old is group.master
    probe = redis.Redis(host="127.0.0.1", port=old.port)
    procs = [
        fleet.worker(url, concurrency=CONCURRENCY, lease=LEASE, env={"BANANAS_WAIT_REPLICAS": "1"})
        for _ in range(WORKERS)
    ]
    wait_until(workers_ready(probe, WORKERS), 30, f"{WORKERS} workers to announce themselves")
    probe.close()

    started = time.monotonic()
    with Client(url, wait_replicas=1) as client, Client(url, wait_replicas=1) as client2:
        ids = submit_all(client, job_specs(600, ms=(5, 40)))
        producers = [
            Submitter(client, job_specs(700, ms=(5, 40)), batch=10, pause=0.02).start(),
            Submitter(client2, job_specs(500, ms=(5, 40))[::-1], batch=5, pause=0.02).start(),
        ]
        wait_until(lambda: len(runs(store)) >= 300, 60, "300 jobs to run before the kill")
        accepted_at_kill = sum(len(p.accepted) for p in producers)

        old.kill()  # kill -9 of the master
        killed = time.monotonic()
        wait_until(lambda: _master_port(group) == survivor.port, 30, "the sentinels to promote the replica")
        failover_s = time.monotonic() - killed
        ran_at_promotion = len(runs(store))
        # Workers follow the new master: jobs complete again within seconds.
        wait_until(lambda: len(runs(store)) > ran_at_promotion + 20, 20, "workers to run jobs on the new master")
        follow_s = time.monotonic() - killed
        # The old master comes back empty; the sentinels make it a replica of the new one,
        # so WAIT 1 can be satisfied again.
        old.start()
        group.wait_healthy(timeout=30)
        for producer in producers:
            producer.join(90)
        accepted_after = sum(len(p.accepted) for p in producers) - accepted_at_kill
        assert accepted_after > 0, "no submit returned after the failover"
        for producer in producers:
            ids += producer.accepted
        sut = redis.Redis(host="127.0.0.1", port=survivor.port)
        try:
            wait_completed(sut, ids, timeout=60)
            hung = [p.name for p in procs if not p.alive()]
            assert hung == [], f"workers exited during the failover: {hung}"
            outcome = check(
                "sentinel_failover", sut, store, ids, started,
                failover_s=round(failover_s, 1), follow_s=round(follow_s, 1),
                submit_errors=sum(p.failures for p in producers),
            )  # fmt: skip
        finally:
            sut.close()
    assert outcome.lost == 0
    # Only jobs in flight at the kill (leased, running or with an ack not yet replicated) run twice.
    assert outcome.duplicated <= WORKERS * CONCURRENCY * 2, outcome.line()
    # Every worker stops on SIGTERM within its grace: none is stuck on the dead master.
    for proc in procs:
        proc.signal(15)
    for proc in procs:
        assert proc.wait(30) == 0, proc.log_text()[-2000:]


def _master_port(group: SentinelGroup) -> bool | int:
    try:
        return group.master_port()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return False
