"""Scenario 9: broken invariants, created directly in Redis, repaired by the reconciler
without losing a job; and the reconciler finds nothing to repair in a healthy system
under load (no false positives)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import orjson
import pytest
import redis

from bananas import Client, Priority
from bananas.core.clock import SYSTEM_CLOCK
from bananas.redis import calls, connection, keys
from bananas.redis.broker import Broker
from bananas.redis.runner import SyncRunner
from bananas.worker.reconciler import ReconcileLimits, Reconciler, Repair
from faults.harness import (
    SOAK,
    Fleet,
    assert_quiet,
    check,
    job_specs,
    records,
    run_pids,
    runs,
    scaled,
    submit_all,
    wait_completed,
    wait_until,
    workers_ready,
)

pytestmark = pytest.mark.timeout(1800 if SOAK else 120)


def _set(r: redis.Redis, job_id: str, **fields: Any) -> None:
    record = orjson.loads(r.get(keys.job(job_id)))  # type: ignore[arg-type]
    record.update(fields)
    r.set(keys.job(job_id), orjson.dumps(record))


def _everywhere(r: redis.Redis) -> dict[str, list[str]]:
    """id -> every list, set or lease it is in (ready lists of the test's keys, parked
    list of 'work', scheduled, dead, leases)."""
    places: dict[str, list[str]] = {}
    lists = [keys.route_queue(k, p) for k in ("alpha", "beta", "default") for p in Priority]
    lists += [keys.parked_queue("alpha", Priority.NORMAL, "work"), keys.DEAD]
    for name in lists:
        for member in r.lrange(name, 0, -1):
            places.setdefault(member.decode(), []).append(name)
    for member in r.zrange(keys.SCHEDULED, 0, -1):
        places.setdefault(member.decode(), []).append(keys.SCHEDULED)
    for member in r.zrange(keys.LEASES, 0, -1):
        places.setdefault(member.decode(), []).append(keys.LEASES)
    return places


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bananas", "reconcile", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_broken_states_are_repaired(
    fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client, cli_env: dict[str, str]
):
    """Each broken state, made by hand, is put back in exactly one place by ``bananas
    reconcile``; a second pass finds nothing; then every runnable job runs exactly once."""
    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    alpha = keys.route_queue("alpha", Priority.NORMAL)

    def new(rk: str = "alpha") -> str:
        return client.submit_job("work", {"ms": 1}, Priority.NORMAL, routing_key=rk)

    def take(job_id: str) -> None:
        assert r.lrem(alpha, 0, job_id) == 1

    # 1. A lease nobody owns, deadline far away: no heartbeat, ack or recoverer would touch it.
    a = new()
    take(a)
    r.zadd(keys.LEASES, {a: now_ms + 3_600_000})
    _set(r, a, status="processing", attempts=1)
    # 2. An owner without a lease deadline: a job in flight that no recoverer can see.
    b = new()
    take(b)
    r.hset(keys.LEASE_OWNERS, b, "gone-host:1:dead0001:1")
    _set(r, b, status="processing", attempts=1)
    # 3. A lease whose record is gone, held by a worker that is gone.
    c = new()
    take(c)
    r.zadd(keys.LEASES, {c: now_ms + 3_600_000})
    r.hset(keys.LEASE_OWNERS, c, "gone-host:2:dead0002:1")
    r.delete(keys.job(c))
    # 4. One id in two places: a ready list and the dead letters; two ready lists; twice in one.
    d1 = new()
    r.lpush(keys.DEAD, d1)
    d2 = new()
    z2 = new("beta")  # (the reconciler reads the lists of routing keys producers registered)
    r.lpush(keys.route_queue("beta", Priority.HIGH), d2)
    d3 = new()
    r.lpush(alpha, d3)
    # 5. A scheduled entry without a record.
    e = str(uuid.uuid4())
    r.zadd(keys.SCHEDULED, {e: time.time() + 3600})
    # 6. Orphans: records that say pending, processing or scheduled, in no list, set or lease.
    f1 = new()
    take(f1)
    f2 = new()
    take(f2)
    _set(r, f2, status="processing", attempts=1)
    f3 = client.schedule_job("work", {"ms": 1}, delay=2, routing_key="alpha")
    due = r.zscore(keys.SCHEDULED, f3)
    r.zrem(keys.SCHEDULED, f3)
    # 7. Leased by a live worker and still queued: it would run twice.
    g = new()
    r.zadd(keys.LEASES, {g: now_ms + 2000})
    r.hset(keys.LEASE_OWNERS, g, "live-host:1:beef0001:1")
    r.hset(keys.worker_info("live-host:1:beef0001"), "pid", "1")
    # 8. A fleet concurrency slot held without a lease, and in-flight counts that drifted.
    r.hset(keys.LEASE_ROUTES, "ghost-job", "alpha")
    r.hset(keys.ROUTE_INFLIGHT, mapping={"alpha": 5, "beta": 2})
    # Healthy jobs that must be left alone: one parked in the list of its name, one queued.
    h = new()
    take(h)
    r.lpush(keys.parked_queue("alpha", Priority.NORMAL, "work"), h)
    r.sadd(keys.parked_index("alpha"), "normal:work")
    z = new()
    expected = {
        a: ("lease_without_owner", "ready"),
        b: ("owner_without_lease", "leased"),
        c: ("lease_without_record", "dead"),
        d1: ("duplicate_placement", "ready"),
        d2: ("duplicate_placement", "ready"),
        d3: ("duplicate_placement", "ready"),
        e: ("scheduled_without_record", "dead"),
        f1: ("orphan", "ready"),
        f2: ("orphan", "ready"),
        f3: ("orphan", "scheduled"),
        g: ("leased_and_queued", "leased"),
        "ghost-job": ("route_without_lease", "none"),
    }

    env = {**cli_env, "JOB_LEASE_SECONDS": "1"}
    before = _everywhere(r)
    dry = _cli(env, "--dry-run", "--orphan-min-age", "0", "--json")
    assert dry.returncode == 0, dry.stderr
    assert _everywhere(r) == before, "a dry run changed something"
    seen = {x["job_id"] for x in json.loads(dry.stdout)["repairs"]}
    missing = {expected[i][0] for i in set(expected) - {"ghost-job"} - seen}
    assert not missing and seen <= set(expected), (missing, dry.stdout)

    done = _cli(env, "--orphan-min-age", "0", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    found = {x["job_id"]: (x["kind"], x["home"]) for x in report["repairs"] if x["job_id"] != "-"}
    assert found == expected
    assert all(x["applied"] for x in report["repairs"])
    drift = sorted(x["detail"] for x in report["repairs"] if x["kind"] == "inflight_count_drift")
    assert len(drift) == 2

    again = _cli(env, "--orphan-min-age", "0")
    assert again.returncode == 0, again.stderr
    assert "found=0 repaired=0" in again.stdout, again.stdout

    places = _everywhere(r)
    for job_id in (a, d1, d2, d3, f1, f2, z):
        assert places[job_id] == [alpha], (job_id, places.get(job_id))
    assert places[b] == [keys.LEASES] and places[g] == [keys.LEASES]
    assert abs(r.zscore(keys.LEASES, b) - (time.time() * 1000 + 1000)) < 5000  # type: ignore[operator]
    assert places[h] == [keys.parked_queue("alpha", Priority.NORMAL, "work")]
    assert places[f3] == [keys.SCHEDULED] and r.zscore(keys.SCHEDULED, f3) == pytest.approx(due)
    for job_id in (c, e):
        assert places[job_id] == [keys.DEAD]
        stub = records(r, [job_id])[job_id]
        assert stub is not None and stub["status"] == "failed" and "record missing" in stub["error"]
    recs = records(r, [a, f2])
    assert all(rec is not None and rec["status"] == "pending" for rec in recs.values())
    assert r.hgetall(keys.LEASE_ROUTES) == {}
    assert {k: int(v) for k, v in r.hgetall(keys.ROUTE_INFLIGHT).items()} == {b"alpha": 0, b"beta": 0}

    # Every job with a record runs, exactly once (b and g once their restored leases expire).
    runnable = [a, b, d1, d2, d3, f1, f2, f3, g, h, z, z2]
    fleet.worker(redis_url, concurrency=4, lease=1.0)
    wait_completed(r, runnable, timeout=60)
    outcome = check("reconciler", r, store, [*runnable, c, e], started, repairs=len(report["repairs"]))
    assert outcome.lost == 0 and outcome.duplicated == 0
    assert outcome.completed == len(runnable)
    assert_quiet(r)


def test_worker_runs_the_reconciler(fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client):
    """The loop in every worker repairs on its own: a job stuck under a lease nobody owns
    (which the recoverer would wait an hour for) runs within seconds of a worker starting."""
    job_id = client.submit_job("work", {"ms": 1}, routing_key="beta")
    r.rpop(keys.route_queue("beta", Priority.NORMAL))
    r.zadd(keys.LEASES, {job_id: int(time.time() * 1000) + 3_600_000})
    worker = fleet.worker(redis_url, concurrency=2, lease=1.0)
    wait_completed(r, [job_id], timeout=30)
    assert "repaired lease_without_owner job=" + job_id in worker.log_text()
    assert runs(store) == {job_id: 1}


class _ReconcileLoop:
    """Runs full reconciler passes (orphans at any age) back to back in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.repairs: list[Repair] = []
        self.passes = 0
        self.raced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        client = connection.async_client(self.url)
        reconciler = Reconciler(
            Broker(client), SYSTEM_CLOCK, lease_seconds=2.0, limits=ReconcileLimits(orphan_min_age=0)
        )
        try:
            while not self._stop.is_set():
                report = await reconciler.reconcile_once(full_sweep=True)
                self.repairs += report.repairs
                self.raced += report.raced
                self.passes += 1
                await asyncio.sleep(0.2)
        finally:
            await client.aclose()

    def __enter__(self) -> _ReconcileLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_reconciler_during_load_repairs_nothing(
    fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client
):
    """Scenario 9, the other half: passes back to back during a live load with a SIGKILL
    find nothing to repair (the snapshot is atomic and every repair re-checks), and the
    load loses nothing."""
    procs = [fleet.worker(redis_url, concurrency=6, lease=2.0) for _ in range(3)]
    wait_until(workers_ready(r, 3), 30, "3 workers")
    started = time.monotonic()
    ids = submit_all(client, job_specs(scaled(2000), ms=(10, 60)))
    with _ReconcileLoop(redis_url) as loop:
        wait_until(lambda: len(runs(store)) > len(ids) // 3, 60, "progress")
        victim = procs[0].pid
        os.kill(victim, signal.SIGKILL)
        wait_completed(r, ids, timeout=120 * (SOAK + 1))
    outcome = check("reconcile_live", r, store, ids, started, passes=loop.passes, repairs=len(loop.repairs))
    assert loop.passes >= 3
    assert loop.repairs == [], [x.describe() for x in loop.repairs[:5]]
    assert outcome.lost == 0
    pids = run_pids(store)
    assert all(sum(1 for p in ps if p != victim) <= 1 for ps in pids.values())
    assert_quiet(r)


def test_a_repair_is_refused_when_the_job_changed(r: redis.Redis, client: Client):
    """The rehome script re-checks, under Redis' lock, that neither the record nor the lease
    owner changed since the reconciler looked; if either did it writes nothing."""
    alpha = keys.route_queue("alpha", Priority.NORMAL)
    job_id = client.submit_job("work", {"ms": 1}, routing_key="alpha")
    r.lpush(keys.DEAD, job_id)  # in two places
    seen = hashlib.sha1(r.get(keys.job(job_id))).hexdigest()  # type: ignore[arg-type]
    channel = keys.route_notify_channel("alpha")
    runner = SyncRunner(r)

    def repair(sha: str, owner: str = "") -> int:
        call = calls.rehome(job_id, "ready", home_queue=alpha, seen_record_sha1=sha, seen_owner=owner, channel=channel,
            layout=keys.STANDALONE,
        )
        return int(runner.run(call))

    _set(r, job_id, description="changed by someone else")
    assert repair(seen) == 0
    assert r.lrange(alpha, 0, -1) == [job_id.encode()] and r.lrange(keys.DEAD, 0, -1) == [job_id.encode()]
    fresh = hashlib.sha1(r.get(keys.job(job_id))).hexdigest()  # type: ignore[arg-type]
    r.hset(keys.LEASE_OWNERS, job_id, "w:1:a:1")  # a worker took it meanwhile
    assert repair(fresh) == 0
    r.hdel(keys.LEASE_OWNERS, job_id)
    assert repair(fresh) == 1
    assert r.lrange(alpha, 0, -1) == [job_id.encode()] and r.llen(keys.DEAD) == 0
    assert repair(fresh) == 1  # idempotent: still exactly one copy
    assert r.lrange(alpha, 0, -1) == [job_id.encode()]
