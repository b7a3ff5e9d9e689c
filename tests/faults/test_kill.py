"""Scenarios 1 and 2: workers killed with SIGKILL at random moments, and stopped with SIGTERM."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import redis

from bananas import Client
from faults.harness import (
    SOAK,
    Fleet,
    Proc,
    assert_quiet,
    check,
    job_specs,
    run_pids,
    runs,
    scaled,
    submit_all,
    wait_completed,
    wait_until,
    workers_ready,
)

pytestmark = pytest.mark.timeout(1800 if SOAK else 180)

LEASE = 2.0
CONCURRENCY = 6


def test_sigkill_at_random_moments(fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client):
    """Scenario 1: lost = 0; a duplicate only for a job whose earlier run was in a killed process."""
    rng = random.Random()
    singles: list[Proc] = [fleet.worker(redis_url, concurrency=CONCURRENCY, lease=LEASE) for _ in range(3)]
    pool = fleet.worker(redis_url, processes=2, concurrency=CONCURRENCY, lease=LEASE, name="pool")
    wait_until(workers_ready(r, 5), 30, "5 worker processes to announce themselves")

    started = time.monotonic()
    ids = submit_all(client, job_specs(scaled(3000), ms=(20, 120)))
    kills = scaled(6)
    killed: set[int] = set()
    done = 0
    while len(killed) < kills:
        time.sleep(rng.uniform(0.6, 1.2))
        finished = len(runs(store))
        if finished >= len(ids):
            break
        targets = [("single", p.pid) for p in singles if p.alive()] + [("child", c) for c in pool.children()]
        kind, pid = rng.choice(targets)
        r_running = r.zcard("bananas:leases")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.add(pid)
        done = finished
        print(f"kill {len(killed)}: {kind} pid {pid} at {finished} runs, {r_running} leased", flush=True)
        if kind == "single":
            index = next(i for i, p in enumerate(singles) if p.pid == pid)
            singles[index].wait(10)
            singles[index] = fleet.worker(redis_url, concurrency=CONCURRENCY, lease=LEASE)
    assert done < len(ids), "the load finished before the kills: raise the job count"

    wait_completed(r, ids, timeout=120 * (SOAK + 1))
    outcome = check("sigkill", r, store, ids, started, kills=len(killed))
    assert outcome.lost == 0

    # Every duplicate is explained by a kill: at most one of a job's runs was in a process
    # that survived; the others were in processes killed before they could acknowledge.
    pids = run_pids(store)
    unexplained = [i for i, ps in pids.items() if len(ps) > 1 and sum(1 for p in ps if p not in killed) > 1]
    assert unexplained == [], f"duplicates not caused by a kill: {unexplained[:5]}"
    assert outcome.duplicated <= len(killed) * CONCURRENCY
    assert pool.alive(), "the supervisor must survive its children being killed"
    assert_quiet(r)


def test_sigterm_mid_load(fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client):
    """Scenario 2: a graceful stop finishes or hands back every running job: lost = 0, duplicated = 0."""
    procs = [fleet.worker(redis_url, concurrency=CONCURRENCY, lease=LEASE) for _ in range(3)]
    procs.append(fleet.worker(redis_url, processes=2, concurrency=CONCURRENCY, lease=LEASE, name="pool"))
    wait_until(workers_ready(r, 5), 30, "5 worker processes to announce themselves")

    started = time.monotonic()
    ids = submit_all(client, job_specs(scaled(2000), ms=(20, 120)))
    stopped = 0
    for round_ in range(scaled(2)):
        wait_until(lambda n=round_: len(runs(store)) >= len(ids) * (n + 1) // (scaled(2) + 2), 60, "progress")
        for proc in procs:
            proc.signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
        assert codes == [0] * len(procs), f"exit codes after SIGTERM: {codes}"
        stopped += len(procs)
        assert r.zcard("bananas:leases") == 0, "a stopped worker left a job leased"
        procs = [fleet.worker(redis_url, concurrency=CONCURRENCY, lease=LEASE) for _ in range(2)]
        procs.append(fleet.worker(redis_url, processes=2, concurrency=CONCURRENCY, lease=LEASE))
    assert len(runs(store)) < len(ids), "the load finished before the stops: raise the job count"

    wait_completed(r, ids, timeout=120 * (SOAK + 1))
    outcome = check("sigterm", r, store, ids, started, stops=stopped)
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    assert_quiet(r)
