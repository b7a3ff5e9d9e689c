"""An idle worker starts new work at once, whichever of its routing keys it lands on,
and does not busy-poll Redis while idle."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from support import Recorder, Workers, eventually

from bananas import Client

KEYS = ("k1", "k2", "k3", "k4", "k5")


def script_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


async def test_idle_worker_on_five_keys_picks_up_a_job_on_the_fifth(
    client: Client, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the fallback poll pushed far away, only the wake-up path can start the job in
    # time: no per-queue blocking (the seed blocked 1-3 s on each empty queue in turn).
    monkeypatch.setattr("bananas.worker.service.IDLE_POLL", 60.0)
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=KEYS)
    for n, key in enumerate(["k5", "k3", "k5"], start=1):
        await asyncio.sleep(0.2)  # let the worker go idle
        started = time.monotonic()
        job_id = client.submit_job("task", key, "low", routing_key=key)
        await eventually(lambda job_id=job_id: job_id in rec.ids, timeout=5, interval=0.005, what=f"job on {key}")
        elapsed = time.monotonic() - started
        assert len(rec.runs) == n
        assert elapsed < 1.0, f"job on {key} took {elapsed:.3f}s to run on an idle worker"  # generous bound


async def test_idle_worker_does_not_busy_poll(workers: Workers, r: redis.Redis) -> None:
    await workers.start(Recorder().registry, routing_keys=KEYS)
    await asyncio.sleep(0.2)
    before = script_calls(r)
    await asyncio.sleep(1.5)
    calls = script_calls(r) - before
    # A dequeue on each look; an idle worker looks about once a second, a busy poller
    # would make hundreds of calls here.
    assert calls <= 6, f"{calls} script calls in 1.5 s while idle"
