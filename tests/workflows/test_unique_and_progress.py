"""Unique jobs (``unique_key``/``unique_for``) and progress (``job.set_progress``), issue 14."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from bananas import AsyncClient, Client, Job, Progress, Registry, Worker
from bananas.errors import ValidationError

StartWorker = Callable[..., Awaitable[Worker]]


def test_ten_concurrent_submitters_queue_one_job(redis_url: str, r: redis.Redis) -> None:
    barrier = threading.Barrier(10)
    ids: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        with Client(redis_url) as client:
            barrier.wait()
            job_id = client.submit_job("report", {"day": 1}, unique_key="report:day-1", unique_for=60)
        with lock:
            ids.append(job_id)

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(ids) == 10 and len(set(ids)) == 1
    assert r.llen("bananas:route:default:queue:normal") == 1
    assert len(r.keys("bananas:job:*")) == 1
    assert r.get("bananas:unique:report:day-1") == ids[0].encode()
    assert 0 < r.ttl("bananas:unique:report:day-1") <= 60


def _submit_from_process(url: str, barrier: Any, out: Any) -> None:
    with Client(url) as client:
        client.redis.ping()
        barrier.wait(20)
        out.put(client.submit_job("sync", None, unique_key="sync-all", unique_for=30))


def test_ten_concurrent_submitter_processes(redis_url: str, r: redis.Redis) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(10)
    out = context.Queue()
    procs = [context.Process(target=_submit_from_process, args=(redis_url, barrier, out)) for _ in range(10)]
    for proc in procs:
        proc.start()
    try:
        ids = [out.get(timeout=30) for _ in procs]
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    assert len(set(ids)) == 1
    assert r.llen("bananas:route:default:queue:normal") == 1


async def test_unique_key_is_released_when_the_job_ends(redis_url: str, start_worker: StartWorker) -> None:
    registry = Registry()
    release = asyncio.Event()

    @registry.handler("sync")
    async def sync(job: Job) -> str:
        await release.wait()
        return "done"

    await start_worker(registry)
    async with AsyncClient(redis_url) as client:
        first = await client.submit_job("sync", None, unique_key="k", unique_for=60)
        # Queued, then running: the same id, nothing queued.
        assert await client.submit_job("sync", None, unique_key="k") == first
        for _ in range(200):
            job = await client.get_job(first)
            if job is not None and job.status == "processing":
                break
            await asyncio.sleep(0.02)
        assert await client.submit_job("sync", None, unique_key="k") == first
        # Another key is independent.
        other = await client.submit_job("sync", None, unique_key="other")
        assert other != first
        release.set()
        assert await client.get_result(first, timeout=10) == "done"
        assert await client.get_result(other, timeout=10) == "done"
        second = await client.submit_job("sync", None, unique_key="k", unique_for=60)
        assert second != first
        assert await client.get_result(second, timeout=10) == "done"
        assert await client.redis.exists("bananas:unique:k") == 0


async def test_unique_key_of_a_failed_job_is_released(redis_url: str, start_worker: StartWorker) -> None:
    registry = Registry()

    @registry.handler("boom")
    def boom(job: Job) -> None:
        raise RuntimeError("boom")

    await start_worker(registry)
    with Client(redis_url) as client:
        first = client.submit_job("boom", None, unique_key="b", max_retries=0)
        for _ in range(200):
            if client.get_job_result(first) is not None:
                break
            await asyncio.sleep(0.02)
        assert client.redis.exists("bananas:unique:b") == 0
        assert client.submit_job("boom", None, unique_key="b", max_retries=0) != first


def test_unique_key_lapses_after_unique_for(redis_url: str, r: redis.Redis) -> None:
    with Client(redis_url) as client:
        first = client.submit_job("a", None, unique_key="short", unique_for=1)
        assert client.submit_job("a", None, unique_key="short", unique_for=1) == first
        time.sleep(1.2)
        assert client.submit_job("a", None, unique_key="short", unique_for=1) != first
        assert r.llen("bananas:route:default:queue:normal") == 2


@pytest.mark.parametrize(
    ("key", "seconds", "match"),
    [("", 10, "unique_key"), (5, 10, "unique_key"), ("k", 0, "unique_for"), ("k", float("nan"), "unique_for")],
)
def test_unique_bad_input(redis_url: str, r: redis.Redis, key: object, seconds: object, match: str) -> None:
    with Client(redis_url) as client, pytest.raises(ValidationError, match=match):
        client.submit_job("a", None, unique_key=key, unique_for=seconds)  # type: ignore[arg-type]
    assert r.dbsize() == 0


READER = """
import sys, time, json
from bananas import Client
client = Client(sys.argv[1])
seen = []
deadline = time.time() + 20
while time.time() < deadline:
    job = client.get_job(sys.argv[2])
    if job is not None and job.progress is not None:
        entry = [float(job.progress), job.progress.message]
        if not seen or seen[-1] != entry:
            seen.append(entry)
        if job.progress == 1.0 and job.status == "completed":
            break
    time.sleep(0.02)
print(json.dumps(seen))
"""


async def test_progress_is_read_from_another_process(
    redis_url: str, start_worker: StartWorker, r: redis.Redis, cli_env: dict[str, str]
) -> None:
    registry = Registry()

    @registry.handler("encode")
    def encode(job: Job) -> str:
        for step in range(1, 2001):  # a tight loop: throttled, not 2,000 writes
            job.set_progress(step / 2000, f"frame {step}")
            if step % 100 == 0:
                time.sleep(0.05)
        return "ok"

    @registry.handler("bad_progress")
    async def bad_progress(job: Job) -> str:
        try:
            job.set_progress(1.5)
        except ValidationError as exc:
            return str(exc)
        return "accepted"

    await start_worker(registry)
    with Client(redis_url) as client:
        job_id = client.submit_job("encode", None)
        reader = await asyncio.create_subprocess_exec(
            sys.executable, "-c", READER, redis_url, job_id, stdout=asyncio.subprocess.PIPE, env=cli_env
        )
        out, _ = await asyncio.wait_for(reader.communicate(), 30)
        seen = json.loads(out)
        assert await asyncio.to_thread(client.get_result, job_id, 10) == "ok"
        job = client.get_job(job_id)
        assert job is not None and isinstance(job.progress, Progress)
        assert job.progress == 1.0 and job.progress.fraction == 1.0 and job.progress.message == "frame 2000"
        assert job.progress.at is not None
        assert client.get_progress(job_id) == 1.0
        # Seen rising from the other process, and far fewer values than reports.
        assert len(seen) >= 2 and seen[-1] == [1.0, "frame 2000"]
        fractions = [f for f, _ in seen]
        assert fractions == sorted(fractions)
        assert len(seen) < 200
        bad = client.submit_job("bad_progress", None)
        assert (await asyncio.to_thread(client.get_result, bad, 10)).startswith("progress must be a number from 0 to 1")


def test_cancelling_a_waiting_unique_job_releases_its_key(redis_url: str, r: redis.Redis) -> None:
    with Client(redis_url) as client:
        first = client.submit_job("a", None, unique_key="c", unique_for=600)
        assert client.cancel(first) is True
        assert r.exists("bananas:unique:c") == 0
        assert client.submit_job("a", None, unique_key="c", unique_for=600) != first


async def test_the_waiter_sees_progress(redis_url: str, start_worker: StartWorker) -> None:
    registry = Registry()

    @registry.handler("steps")
    async def steps(job: Job) -> str:
        for step in range(1, 6):
            job.set_progress(step / 5, f"step {step}")
            await asyncio.sleep(0.3)  # slower than the throttle: every report is written
        return "done"

    await start_worker(registry)
    seen: list[tuple[float, str | None]] = []
    async with AsyncClient(redis_url) as client:
        job_id = await client.submit_job("steps", None)
        result = await client.get_result(job_id, timeout=20, on_progress=lambda p: seen.append((p.fraction, p.message)))
    assert result == "done"
    assert seen[-1] == (1.0, "step 5") and len(seen) >= 3
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)
    # The blocking client's waiter sees it too.
    sync_seen: list[float] = []
    with Client(redis_url) as sync_client:
        other = sync_client.submit_job("steps", None)
        value = await asyncio.to_thread(sync_client.get_result, other, 20, on_progress=lambda p: sync_seen.append(p))
    assert value == "done" and sync_seen[-1] == 1.0 and len(sync_seen) >= 3
