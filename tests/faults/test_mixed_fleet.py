"""Mixed fleet: simulated ORIGINAL Bananas components (two Go worker threads reading the
legacy lists into bananas:queue:processing with their retry rule, the Go scheduler, the
original SDKs as producers) run beside our workers in migration mode, a reconciler doing
full passes back to back (orphans at any age) and a SIGKILL of one of our workers, under
load. Nothing is lost, and no job the original holds is ever run by us."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
import time
import uuid
from typing import Any

import pytest
import redis
from original_bananas import PROCESSING, OriginalScheduler, OriginalWorker, sdk_record

from bananas import Client, Priority
from bananas.core.clock import SYSTEM_CLOCK
from bananas.redis import connection, keys
from bananas.redis.broker import Broker
from bananas.worker.reconciler import ReconcileLimits, Reconciler, Repair
from faults.harness import SOAK, Fleet, check, run_pids, scaled, wait_completed, wait_until, workers_ready

pytestmark = pytest.mark.timeout(1800 if SOAK else 150)

#: Marks a run of the simulated original in ``test:log`` (our runs carry a real pid).
ORIGINAL_PID = 0


class ReconcileLoop:
    """Full reconciler passes back to back in a thread, orphans at any age."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.repairs: list[Repair] = []
        self.passes = 0
        self.held_seen = 0
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
                self.held_seen = max(self.held_seen, report.original_processing)
                self.passes += 1
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()

    def __enter__(self) -> ReconcileLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _original_handler(store_url: str) -> tuple[Any, Any]:
    store = redis.Redis.from_url(store_url)

    def handler(job: dict[str, Any]) -> int:
        payload = job.get("payload") or {}
        time.sleep(float(payload.get("ms", 0)) / 1000)
        if payload.get("fail_once") and int(job.get("attempts") or 0) == 0:
            raise RuntimeError("fails once on the original")
        return 1

    def on_run(job_id: str) -> None:
        pipe = store.pipeline(transaction=True)
        pipe.hincrby("test:runs", job_id, 1)
        pipe.rpush("test:log", f"{job_id}|{ORIGINAL_PID}")
        pipe.execute()

    return handler, on_run


def _sdk_submit(r: redis.Redis, n: int, rng: random.Random) -> list[str]:
    """The original SDKs: every job to a legacy list; a third name routing key 'alpha'.
    (SET and LPUSH sent together: the reconciler here looks for orphans at any age.)"""
    ids: list[str] = []
    pipe = r.pipeline(transaction=True)
    for i in range(n):
        job_id = str(uuid.uuid4())
        payload = {"ms": rng.randint(20, 80), "fail_once": i % 20 == 0}
        if i % 50 == 0:
            payload["ms"] = rng.randint(800, 1500)  # held long: many reconcile passes see it
        prio = ("high", "normal", "low")[i % 3]
        record = sdk_record(job_id, "work", payload, prio, routing_key="alpha" if i % 3 == 1 else "")
        pipe.set(keys.job(job_id), json.dumps(record))
        pipe.lpush(f"bananas:queue:{prio}", job_id)
        ids.append(job_id)
    pipe.execute()
    return ids


def test_mixed_fleet_loses_nothing_and_never_runs_what_the_original_holds(
    fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis
) -> None:
    rng = random.Random(13)
    compat = {"BANANAS_COMPAT": "original"}
    procs = [fleet.worker(redis_url, concurrency=3, lease=2.0, env=compat) for _ in range(2)]
    wait_until(workers_ready(r, 2), 30, "2 workers")
    handler, on_run = _original_handler(redis_url)
    originals = [OriginalWorker(redis_url, handler, backoff_scale=0.25, on_run=on_run).start() for _ in range(4)]
    go_scheduler = OriginalScheduler(redis_url, tick=0.5).start()
    started = time.monotonic()
    ids: list[str] = []
    try:
        with ReconcileLoop(redis_url) as loop, Client(redis_url, compat="original") as ours:
            for _ in range(scaled(10)):
                ids += _sdk_submit(r, scaled(100), rng)
                for rk in ("default", "alpha"):
                    payloads = [{"ms": rng.randint(20, 80)} for _ in range(scaled(50))]
                    ids += ours.submit_many("work", payloads, Priority.NORMAL, routing_key=rk)
                time.sleep(1.0)
            wait_until(lambda: len(store.hkeys("test:runs")) > len(ids) // 3, 60, "progress")
            victim = procs[0].pid
            os.kill(victim, signal.SIGKILL)
            fleet.worker(redis_url, concurrency=3, lease=2.0, env=compat, name="replacement")
            wait_completed(r, ids, timeout=90 * (SOAK + 1))
    finally:
        go_scheduler.stop()
        for original in originals:
            original.stop()
    pids = run_pids(store)
    by_original = {i for i, ps in pids.items() if ORIGINAL_PID in ps}
    by_ours = {i for i, ps in pids.items() if any(p != ORIGINAL_PID for p in ps)}
    both = by_original & by_ours
    outcome = check(
        "mixed_fleet",
        r,
        store,
        ids,
        started,
        original_runs=len(by_original),
        our_runs=len(by_ours),
        run_by_both=len(both),
        original_retries=sum(o.retried for o in originals),
        go_promoted=go_scheduler.promoted,
        reconcile_passes=loop.passes,
        held_seen=loop.held_seen,
        repairs=len(loop.repairs),
    )
    assert outcome.lost == 0
    assert both == set(), (f"{len(both)} jobs run by the original and by us", [x.describe() for x in loop.repairs[:8]])
    # The only duplicates allowed: a job whose first run was on the killed worker.
    assert all(sum(1 for p in ps if p != victim) <= 1 for ps in pids.values())
    assert loop.repairs == [], [x.describe() for x in loop.repairs[:5]]
    assert loop.passes >= 5 and loop.held_seen >= 1, "the reconciler must have seen jobs the original held"
    assert by_original and by_ours, "both fleets ran jobs"
    assert sum(o.retried for o in originals) >= 1 and go_scheduler.promoted >= 1
    assert r.llen(PROCESSING) == 0
    for prio in Priority:
        assert r.llen(keys.legacy_queue(prio)) == 0
    assert r.zcard(keys.SCHEDULED) == 0 and r.zcard(keys.LEASES) == 0
