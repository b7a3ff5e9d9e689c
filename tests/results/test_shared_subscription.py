"""Thousands of waiters in one process share one subscription connection."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import redis
import results_app
from results_support import (
    StartWorker,
    eventually,
    pubsub_clients,
    result_subscriptions,
    settings,
    thread_worker,
    wait_until,
)

from bananas import AsyncClient, Client
from bananas.redis import connection

WAITERS = 2000


async def test_thousands_of_async_waiters_share_one_subscription_connection(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    half = WAITERS // 2
    named = connection.async_client(redis_url, client_name="results-waiters")
    async with AsyncClient(redis_url, redis_client=named) as client:
        # Half wait on jobs submitted beforehand, half submit and wait; no worker yet, so
        # every wait is pending at once.
        queued = await client.submit_many("echo", [{"i": i} for i in range(half)])
        started = time.perf_counter()
        waits = [asyncio.ensure_future(client.get_result(job_id, timeout=120)) for job_id in queued]
        waits += [
            asyncio.ensure_future(client.submit_and_wait("echo", {"i": i}, timeout=120)) for i in range(half, WAITERS)
        ]
        await eventually(lambda: result_subscriptions(r) == WAITERS, timeout=60, what=f"{WAITERS} subscriptions")
        subscribed = time.perf_counter() - started
        await eventually(lambda: r.llen("bananas:route:default:queue:normal") == WAITERS, what="all jobs queued")

        listeners = pubsub_clients(r)
        assert len(listeners) == 1, listeners
        assert listeners[0]["name"] == "results-waiters"
        assert int(listeners[0]["sub"]) == WAITERS
        own = [c for c in r.client_list() if c["name"] == "results-waiters"]
        assert len(own) <= connection.MAX_CONNECTIONS, "bounded by the pool, not one per waiter"
        assert not any(w.done() for w in waits)

        worker_started = time.perf_counter()
        await start_worker(concurrency=100)
        # The worker's own wake-up subscription is the only other one.
        others = [c for c in pubsub_clients(r) if c["name"] != "results-waiters"]
        assert len(others) == 1 and "bananas:route:default:notify" in str(r.pubsub_channels())
        results = await asyncio.wait_for(asyncio.gather(*waits), 120)
        finished = time.perf_counter()
        assert results == [{"i": i} for i in range(WAITERS)]
        # Every subscription is given back.
        await eventually(lambda: result_subscriptions(r) == 0, what="all unsubscribed")
    print(
        f"\n{WAITERS} waiters: subscribed in {subscribed:.2f}s, over 1 pubsub connection "
        f"({len(own)} connections in all for the client); drained by the worker in "
        f"{finished - worker_started:.2f}s; {finished - started:.2f}s in all"
    )


def test_sync_client_waits_from_many_threads(redis_url: str, r: redis.Redis) -> None:
    threads_n = 8
    with Client(redis_url) as client:
        queued = client.submit_many("echo", [{"t": t} for t in range(threads_n)])
        barrier = threading.Barrier(threads_n)
        results: dict[int, list[Any]] = {}
        errors: list[BaseException] = []

        def run(t: int) -> None:
            try:
                barrier.wait(10)
                # All threads start waiting on a fresh client at once (no worker yet).
                got = [client.submit_and_wait("echo", {"first": t}, timeout=60)]
                got.append(client.get_result(queued[t], timeout=60))
                got += [client.submit_and_wait("add", {"a": t, "b": i}, timeout=60)["sum"] for i in range(20)]
                results[t] = got
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        wait_until(lambda: result_subscriptions(r) == threads_n, what="every thread's subscription")
        listeners = pubsub_clients(r)
        assert len(listeners) == 1, f"one subscription connection for the client, got {listeners}"
        assert int(listeners[0]["sub"]) == threads_n
        background = [t for t in threading.enumerate() if t.name == "bananas-results"]
        assert len(background) == 1, background
        with thread_worker(results_app.registry, settings(redis_url, concurrency=8)):
            for thread in threads:
                thread.join(60)
        assert not errors, errors
        assert results == {t: [{"first": t}, {"t": t}] + [t + i for i in range(20)] for t in range(threads_n)}
