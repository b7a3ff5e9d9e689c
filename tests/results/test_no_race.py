"""Waiting has no race with the result being stored, and it listens instead of polling."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import redis
import results_app
from results_support import StartWorker, calls, eventually, result_subscriptions, settings, thread_worker, wait_until

from bananas import AsyncClient, Client, Job, Registry
from bananas.results.waiter import ResultWaiter
from bananas.worker import writer as writer_module

#: Commands the test itself sends to observe the server.
OBSERVER = {"info", "client|list", "pubsub|numsub", "pubsub|channels", "exists", "llen", "ping"}


async def test_result_stored_before_the_wait_is_returned_at_once(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    await start_worker()
    async with AsyncClient(redis_url) as client:
        job_id = await client.submit_job("add", {"a": 3, "b": 4})
        await eventually(lambda: r.exists(f"bananas:result:{job_id}"), what="the result")
        # Long after the notification was published to nobody.
        assert (await client.get_result(job_id, timeout=30))["sum"] == 7
        # The waiter's own path (subscribe, confirmation, then read) finds it too: no
        # notification will ever come, so only the read after subscribing can see it.
        found = await client._result_waiter().wait(job_id, timeout=30)
        assert found.ok and found.result["sum"] == 7


async def test_result_stored_between_the_first_look_and_the_subscription(
    redis_url: str, r: redis.Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_result looks, finds nothing, then subscribes; the job finishes (and publishes to
    nobody) in between. The read after the confirmed subscription must still see it."""
    original = ResultWaiter._add
    delayed: list[str] = []

    async def subscribe_late(self: ResultWaiter, channel: str, future: asyncio.Future[None]) -> None:
        job_id = channel.rsplit(":", 1)[1]
        await eventually(lambda: r.exists(f"bananas:result:{job_id}"), what="the result before subscribing")
        delayed.append(job_id)
        await original(self, channel, future)

    monkeypatch.setattr(ResultWaiter, "_add", subscribe_late)
    await start_worker()
    async with AsyncClient(redis_url) as client:
        job_id = await client.submit_job("slow", {"seconds": 0.2, "value": "raced"})
        assert await client.get_result(job_id, timeout=30) == {"value": "raced", "slept": 0.2}
    assert delayed == [job_id]


async def test_many_concurrent_submit_and_wait_with_a_fast_worker(redis_url: str, start_worker: StartWorker) -> None:
    await start_worker(concurrency=50)
    rng = random.Random(7)
    async with AsyncClient(redis_url) as client:

        async def one(i: int) -> Any:
            if rng.random() < 0.3:  # some waits start after their job may already be done
                job_id = await client.submit_job("echo", {"i": i})
                await asyncio.sleep(rng.random() / 50)
                return await client.get_result(job_id, timeout=30)
            return await client.submit_and_wait("echo", {"i": i}, timeout=30)

        results = await asyncio.gather(*(one(i) for i in range(1000)))
    assert results == [{"i": i} for i in range(1000)]


def test_many_sequential_sync_waits(redis_url: str, r: redis.Redis) -> None:
    """Back-to-back submit_and_wait: each job finishes within moments of its subscription
    (which the sync client sends while it submits), and every subscription is given back."""
    with thread_worker(results_app.registry, settings(redis_url, concurrency=4)), Client(redis_url) as client:
        for i in range(300):
            assert client.submit_and_wait("add", {"a": i, "b": 1}, timeout=30)["sum"] == i + 1
        wait_until(lambda: result_subscriptions(r) == 0, what="every subscription given back")
        job_ids = [client.submit_job("echo", i) for i in range(100)]
        assert [client.get_result(job_id, timeout=30) for job_id in job_ids] == list(range(100))


def _commands(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


async def test_waiting_listens_instead_of_polling(redis_url: str, r: redis.Redis, start_worker: StartWorker) -> None:
    async with AsyncClient(redis_url) as client:
        job_id = await client.submit_job("add", {"a": 1, "b": 1})  # no worker yet: it waits
        before = calls(r, "hgetall")
        waiting = asyncio.create_task(client.get_result(job_id, timeout=30))
        await eventually(lambda: r.pubsub_numsub(f"bananas:result:notify:{job_id}")[0][1] == 1, what="the subscription")
        await asyncio.sleep(0.1)  # the read after the confirmation
        settled = _commands(r)
        await asyncio.sleep(1.5)
        idle = _commands(r)
        assert not waiting.done()
        # While waiting, nothing is sent to the server at all (except what this test sends).
        changed = {k: idle[k] - settled.get(k, 0) for k in idle if idle[k] != settled.get(k, 0)}
        assert set(changed) <= OBSERVER, changed
        assert calls(r, "hgetall") - before == 2, "one look before subscribing, one after"
        await start_worker()
        assert (await asyncio.wait_for(waiting, 30))["sum"] == 2


async def test_results_of_batched_acks_are_all_stored_and_announced(
    redis_url: str, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs finishing together are acknowledged in one ``ack_many`` call; every one of
    them still stores its result and wakes its waiter."""
    merged: list[int] = []
    original = writer_module.calls.ack_many

    def counting(acks: Any) -> Any:
        merged.append(len(acks))
        return original(acks)

    monkeypatch.setattr(writer_module.calls, "ack_many", counting)
    gate = asyncio.Event()
    started: list[str] = []
    registry = Registry()

    @registry.handler("gated")
    async def gated(job: Job) -> dict[str, int]:
        started.append(job.id)
        await gate.wait()
        return {"n": job.payload}

    await start_worker(registry, concurrency=60)
    async with AsyncClient(redis_url) as client:
        waits = [asyncio.ensure_future(client.submit_and_wait("gated", n, timeout=30)) for n in range(60)]
        await eventually(lambda: len(started) == 60, what="all 60 jobs running")
        gate.set()  # all finish in the same instant
        assert await asyncio.gather(*waits) == [{"n": n} for n in range(60)]
    assert merged and max(merged) > 1, merged
