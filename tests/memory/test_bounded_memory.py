"""Bounded memory: finished jobs' records and results expire, the dead letter list is
capped, and under a steady stream the key count and ``used_memory`` level off."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import subprocess
import sys
import time
from typing import Any

import redis

from bananas import AsyncClient, Client, Fail, Job, JobStatus, Registry, Worker, WorkerSettings
from bananas.config import DEFAULT_COMPLETED_TTL, DEFAULT_DEAD_LETTER_CAP, DEFAULT_FAILED_TTL

DEAD = "bananas:queue:dead"
FIELDS = {f.name for f in dataclasses.fields(WorkerSettings)}


def short_ttls(seconds: int, dead_cap: int) -> dict[str, Any]:
    """Every lifetime a worker applies, short (result TTLs only where this version has them)."""
    settings: dict[str, Any] = {"completed_ttl": seconds, "failed_ttl": seconds, "dead_letter_cap": dead_cap}
    for name in ("result_ttl", "result_failure_ttl"):
        if name in FIELDS:
            settings[name] = seconds
    return settings


def registry() -> Registry:
    reg = Registry()

    @reg.handler("ok")
    async def ok(job: Job) -> dict[str, Any]:
        return {"echo": job.payload}

    @reg.handler("bad")
    async def bad(job: Job) -> None:
        raise Fail("bad on purpose")

    return reg


async def settle(client: Client, ids: list[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [client.get_job(i) for i in ids]
        if all(j is not None and j.status in (JobStatus.COMPLETED, JobStatus.FAILED) for j in jobs):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("jobs did not finish")


def test_defaults_are_a_day_for_completed_a_week_for_failed() -> None:
    settings = WorkerSettings()
    assert (settings.completed_ttl, settings.failed_ttl) == (DEFAULT_COMPLETED_TTL, DEFAULT_FAILED_TTL)
    assert (DEFAULT_COMPLETED_TTL, DEFAULT_FAILED_TTL) == (24 * 3600, 7 * 24 * 3600)
    assert settings.dead_letter_cap == DEFAULT_DEAD_LETTER_CAP > 0
    env = {"JOB_COMPLETED_TTL": "60", "JOB_FAILED_TTL": "120", "DEAD_LETTER_MAX": "7"}
    from_env = WorkerSettings.from_env(env)
    assert (from_env.completed_ttl, from_env.failed_ttl, from_env.dead_letter_cap) == (60, 120, 7)


async def test_default_worker_gives_finished_records_and_results_a_ttl(redis_url: str, r: redis.Redis) -> None:
    worker = Worker(registry(), WorkerSettings(redis_url=redis_url, shutdown_grace=5))
    task = asyncio.create_task(worker.run())
    with Client(redis_url) as client:
        ok_id, bad_id = client.submit_job("ok", 1), client.submit_job("bad", 2)
        pending_id = client.schedule_job("ok", 3, delay=3600)
        await settle(client, [ok_id, bad_id])
    worker.stop()
    await stopped(task)
    assert DEFAULT_COMPLETED_TTL - 60 < r.ttl(f"bananas:job:{ok_id}") <= DEFAULT_COMPLETED_TTL
    assert DEFAULT_FAILED_TTL - 60 < r.ttl(f"bananas:job:{bad_id}") <= DEFAULT_FAILED_TTL
    assert r.ttl(f"bananas:job:{pending_id}") == -1  # unfinished work never expires
    for key in r.scan_iter("bananas:result:*"):
        assert r.ttl(key) > 0, key  # results, when stored, expire too
    # Nothing that grows with the number of jobs is kept without a TTL, except the
    # (capped) dead letter list and the unfinished job.
    for key in r.scan_iter():
        name = key.decode()
        if r.ttl(key) == -1:
            assert name in {DEAD, "bananas:routing_keys", "bananas:workers", f"bananas:job:{pending_id}",
                            "bananas:queue:scheduled"} or not name.startswith("bananas:job:"), name  # fmt: skip


async def test_short_ttls_and_the_dead_letter_cap_apply(redis_url: str, r: redis.Redis) -> None:
    worker = Worker(registry(), WorkerSettings(redis_url=redis_url, shutdown_grace=5, **short_ttls(1, 3)))
    task = asyncio.create_task(worker.run())
    with Client(redis_url) as client:
        ids = [client.submit_job("bad", i) for i in range(6)] + [client.submit_job("ok", 0)]
        await settle(client, ids)
        assert r.llen(DEAD) == 3  # the three newest
        assert [i.decode() for i in r.lrange(DEAD, 0, -1)] == list(reversed(ids[3:6]))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(client.get_job(i) for i in ids):
            await asyncio.sleep(0.1)
        assert all(client.get_job(i) is None for i in ids)
    worker.stop()
    await stopped(task)


def test_cli_worker_reads_the_lifetimes_from_the_environment(
    cli_env: dict[str, str], r: redis.Redis, redis_url: str
) -> None:
    env = {**cli_env, "JOB_COMPLETED_TTL": "50", "JOB_FAILED_TTL": "70", "DEAD_LETTER_MAX": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bananas", "worker", "apps.basic:registry", "--concurrency", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with Client(redis_url) as client:
            ok_id = client.submit_job("noop", None)
            bad_ids = [client.submit_job("boom", None, max_retries=0) for _ in range(4)]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                jobs = [client.get_job(i) for i in [ok_id, *bad_ids]]
                if all(j is not None and j.status in (JobStatus.COMPLETED, JobStatus.FAILED) for j in jobs):
                    break
                time.sleep(0.05)
        assert 40 < r.ttl(f"bananas:job:{ok_id}") <= 50
        assert all(60 < r.ttl(f"bananas:job:{i}") <= 70 for i in bad_ids)
        assert r.lrange(DEAD, 0, -1) == [bad_ids[3].encode(), bad_ids[2].encode()]
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""


async def test_steady_stream_levels_off(redis_url: str, r: redis.Redis) -> None:
    """~300 jobs/s for 16 s (1 in 10 fails for good), with every lifetime set to 2 s.
    Without TTLs the key count would grow with every job (about 10,000 by the end);
    with them it plateaus at a few seconds' worth of jobs and memory stops growing."""
    ttl, dead_cap, seconds, batch, tick = 2, 50, 16.0, 30, 0.1
    settings = WorkerSettings(redis_url=redis_url, concurrency=50, shutdown_grace=5, **short_ttls(ttl, dead_cap))
    worker = Worker(registry(), settings)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.wait_ready(), 10)
    rng = random.Random(7)
    submitted = 0
    samples: list[tuple[float, int, int, int, int]] = []  # (t, keys, used_memory, dead, backlog)
    blob = "x" * 200
    started = time.monotonic()
    next_sample = started
    async with AsyncClient(redis_url) as client:
        while (now := time.monotonic()) - started < seconds:
            payloads = [{"n": submitted + i, "blob": blob} for i in range(batch)]
            failing = [p for p in payloads if rng.random() < 0.1]
            await client.submit_many("ok", [p for p in payloads if p not in failing])
            if failing:
                await client.submit_many("bad", failing)
            submitted += batch
            if now >= next_sample:
                info = r.info("memory")
                backlog = r.llen("bananas:route:default:queue:normal")
                samples.append((now - started, r.dbsize(), int(info["used_memory"]), r.llen(DEAD), backlog))
                next_sample += 1.0
            await asyncio.sleep(max(0.0, tick - (time.monotonic() - now)))
    worker.stop()
    await stopped(task)

    line = ", ".join(f"{t:.0f}s keys={k} mem={m // 1024}KiB dead={d} ready={q}" for t, k, m, d, q in samples)
    print(f"\nsteady stream: {submitted} jobs in {seconds:.0f}s, ttl {ttl}s; samples {line}")
    assert submitted >= 2000
    middle = [s for s in samples if seconds / 3 <= s[0] < 2 * seconds / 3]
    last = [s for s in samples if s[0] >= 2 * seconds / 3]
    assert middle and last
    # Keys in use are those of the last few seconds (records, results, a small backlog),
    # far below one per submitted job, and they do not keep climbing.
    assert max(s[1] for s in samples) < submitted / 2, samples
    assert max(s[1] for s in last) <= 1.5 * max(s[1] for s in middle) + 200, samples
    assert max(s[2] for s in last) <= 1.3 * max(s[2] for s in middle) + 2 * 1024 * 1024, samples
    assert all(s[3] <= dead_cap for s in samples)
    # Once the stream stops, everything but the capped dead list and a few fixed keys goes.
    deadline = time.monotonic() + ttl + 5
    while time.monotonic() < deadline and r.dbsize() > 20:
        await asyncio.sleep(0.2)
    leftover = sorted(k.decode() for k in r.scan_iter())
    assert len(leftover) <= 20, leftover
    assert r.llen(DEAD) == dead_cap


async def stopped(task: asyncio.Task[None], timeout: float = 30.0) -> None:
    """Wait for a stopped worker's ``run()`` to return, without ever hanging the suite:
    on timeout the task is cancelled (not awaited) and the test fails."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise AssertionError(f"worker did not stop within {timeout}s")
    task.result()
