"""Issue 9 item 4: hosts whose clocks disagree by minutes. Every worker and client runs
on the Redis server's time (a per-process offset measured against ``TIME``), so skewed
host clocks cause no extra duplicates, no early runs and no poison pills.

The worker subprocesses get their skew from the test app's hook (``TEST_CLOCK_SKEW``,
see faults/app.py), the clients from ``host_clock_skew`` below: both move ``time.time``,
which is how Python code reads the wall clock (what libfaketime would move)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import redis

from bananas import Client
from bananas.redis import keys
from faults.harness import (
    ROUTING_KEYS,
    Fleet,
    assert_quiet,
    check,
    job_specs,
    submit_all,
    wait_completed,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)

#: Worker hosts: 5 minutes and 1 minute ahead and behind.
WORKER_SKEWS = (300.0, -300.0, 60.0, -60.0)
#: Client hosts that schedule jobs DELAY seconds ahead.
CLIENT_SKEWS = (-300.0, -60.0, 0.0, 300.0)
DELAY = 40.0
LEASE = 2.0
#: The true time, whatever ``host_clock_skew`` does.
TRUE_TIME = time.time


@contextlib.contextmanager
def host_clock_skew(seconds: float) -> Iterator[None]:
    """This process's wall clock off by ``seconds`` inside the block."""
    real = time.time
    time.time = lambda: real() + seconds
    try:
        yield
    finally:
        time.time = real


def test_skewed_host_clocks(fleet: Fleet, redis_url: str, r: redis.Redis, store: redis.Redis, client: Client) -> None:
    procs = [
        fleet.worker(redis_url, concurrency=4, lease=LEASE, env={"TEST_CLOCK_SKEW": str(skew)}, name=f"skew{skew:+.0f}")
        for skew in WORKER_SKEWS
    ]
    # Readiness from the logs: the fleet's presence list is itself kept in server time.
    wait_until(lambda: all("consuming" in p.log_text() for p in procs), 30, f"{len(procs)} workers")
    started = time.monotonic()

    # Jobs due in 40 s, scheduled by clients whose clocks are minutes off.
    due: dict[str, float] = {}
    for skew in CLIENT_SKEWS:
        with host_clock_skew(skew), Client(redis_url) as skewed:
            for i in range(5):
                submitted = TRUE_TIME()
                job_id = skewed.schedule_job("stamp", {"ms": 10}, delay=DELAY, routing_key=ROUTING_KEYS[i % 3])
                due[job_id] = submitted + DELAY
    # Meanwhile a load of short jobs and some longer than the lease (kept by heartbeats).
    ids = submit_all(client, job_specs(400, ms=(10, 100)))
    ids += [client.submit_job("work", {"ms": 3000}, routing_key=ROUTING_KEYS[i % 3]) for i in range(8)]

    every = ids + list(due)
    wait_completed(r, every, timeout=DELAY + 40)
    starts = {k.decode(): float(v) for k, v in store.hgetall("test:started_at").items()}
    early = {job_id: round(due[job_id] - starts[job_id], 1) for job_id in due if starts[job_id] < due[job_id] - 0.5}
    outcome = check(
        "clock_skew", r, store, every, started, worker_skews="/".join(f"{s:+.0f}" for s in WORKER_SKEWS),
        early=len(early),
    )  # fmt: skip
    assert early == {}, f"jobs scheduled {DELAY:.0f} s ahead ran early (seconds early): {early}"
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    assert r.llen(keys.DEAD) == 0, "healthy jobs were parked as poison pills"
    assert_quiet(r)
