"""Failed jobs raise JobFailedError, slow ones JobTimeoutError, non-JSON results fail."""

from __future__ import annotations

import asyncio

import pytest
import redis
import results_app
from results_support import StartWorker, eventually, settings, thread_worker

from bananas import AsyncClient, Client, Fail, Job, JobFailedError, JobTimeoutError, Registry


async def test_failure_raises_job_failed_error_with_message_and_id(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    await start_worker()
    async with AsyncClient(redis_url) as client:
        with pytest.raises(JobFailedError) as caught:
            await client.submit_and_wait("explode", {"n": 7}, timeout=10, max_retries=0)
        err = caught.value
        assert err.job_id and r.exists(f"bananas:job:{err.job_id}")
        assert err.error.startswith("ValueError: exploded on purpose: {'n': 7}")
        assert str(err) == f"job {err.job_id} failed: ValueError: exploded on purpose: {{'n': 7}}"
        # Read again later, by id: the same error, with or without waiting.
        for timeout in (None, 5):
            with pytest.raises(JobFailedError) as again:
                await client.get_result(err.job_id, timeout=timeout)
            assert again.value.job_id == err.job_id and again.value.error == err.error
        found = await client.get_job_result(err.job_id)
        assert found is not None and not found.ok and found.error == err.error
        with pytest.raises(JobFailedError):
            found.value()


async def test_failed_only_after_retries_are_exhausted(redis_url: str, start_worker: StartWorker) -> None:
    runs: dict[str, int] = {}
    registry = Registry()

    @registry.handler("flaky")
    def flaky(job: Job) -> dict[str, int]:
        runs[job.payload["key"]] = runs.get(job.payload["key"], 0) + 1
        if runs[job.payload["key"]] <= job.payload["failures"]:
            raise RuntimeError(f"attempt {runs[job.payload['key']]} failed")
        return {"runs": runs[job.payload["key"]]}

    @registry.handler("refuse")
    def refuse(job: Job) -> None:
        raise Fail("bad input, not retrying")

    await start_worker(registry)
    async with AsyncClient(redis_url) as client:
        # Two failures, then success within max_retries=2: the waiter sees only the success.
        value = await client.submit_and_wait("flaky", {"key": "a", "failures": 2}, timeout=10, max_retries=2)
        assert value == {"runs": 3}
        # Three failures with max_retries=2: failed after the third attempt, with its error.
        with pytest.raises(JobFailedError) as caught:
            await client.submit_and_wait("flaky", {"key": "b", "failures": 3}, timeout=10, max_retries=2)
        assert caught.value.error.startswith("RuntimeError: attempt 3 failed")
        assert runs["b"] == 3
        found = await client.get_job_result(caught.value.job_id)
        assert found is not None and found.attempts == 3
        # Fail(...) skips the remaining retries.
        with pytest.raises(JobFailedError) as refused:
            await client.submit_and_wait("refuse", None, timeout=10, max_retries=5)
        assert refused.value.error == "Fail: bad input, not retrying"


def test_sync_client_failure_and_timeout(redis_url: str) -> None:
    with thread_worker(results_app.registry, settings(redis_url)), Client(redis_url) as client:
        with pytest.raises(JobFailedError) as caught:
            client.submit_and_wait("explode", "sync", timeout=10, max_retries=0)
        assert caught.value.error.startswith("ValueError: exploded on purpose: sync")
        with pytest.raises(JobTimeoutError) as late:
            client.submit_and_wait("slow", {"seconds": 1.0, "value": "sync"}, timeout=0.1)
        assert isinstance(late.value, TimeoutError)
        assert client.get_result(late.value.job_id, timeout=10) == {"value": "sync", "slept": 1.0}


async def test_timeout_leaves_the_job_running(redis_url: str, start_worker: StartWorker) -> None:
    await start_worker()
    async with AsyncClient(redis_url) as client:
        with pytest.raises(JobTimeoutError) as caught:
            await client.submit_and_wait("slow", {"seconds": 1.0, "value": 1}, timeout=0.1)
        job_id = caught.value.job_id
        assert caught.value.timeout == 0.1
        assert str(caught.value) == f"no result for job {job_id} within 0.1 seconds (the job keeps running)"
        job = await client.get_job(job_id)
        assert job is not None and job.status.value in ("pending", "processing")
        # get_result with a timeout raises the same way, and the job is still unharmed.
        with pytest.raises(JobTimeoutError):
            await client.get_result(job_id, timeout=0.05)
        assert await client.get_result(job_id) is None
        assert await client.get_result(job_id, timeout=10) == {"value": 1, "slept": 1.0}
        job = await client.get_job(job_id)
        assert job is not None and job.status.value == "completed" and job.attempts == 1


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("returns_set", "set"),
        ("returns_object", "object"),
        ("returns_bytes", "bytes"),
        ("returns_nan", "NaN"),
        ("returns_int_keys", "key must be str"),
    ],
)
async def test_non_json_result_fails_the_job_with_a_clear_error(
    redis_url: str, start_worker: StartWorker, name: str, detail: str
) -> None:
    await start_worker()
    async with AsyncClient(redis_url) as client:
        with pytest.raises(JobFailedError) as caught:
            # Retries would not change the value: it fails on the first attempt.
            await client.submit_and_wait(name, None, timeout=10, max_retries=3)
        error = caught.value.error
        assert error.startswith("ResultError: the handler's return value cannot be stored as JSON"), error
        assert detail in error
        found = await client.get_job_result(caught.value.job_id)
        assert found is not None and found.status == "failed" and found.attempts == 1
        job = await client.get_job(caught.value.job_id)
        assert job is not None and job.status.value == "failed"


class _NeverConfirmed(dict[str, "asyncio.Future[None]"]):
    """Stands in for ``ResultWaiter._confirmations``: the listener finds no confirmation
    to resolve, so a new wait stays parked in its subscription step."""

    def get(self, key: str, default: object = None) -> None:  # type: ignore[override]
        return None


async def test_wait_cancelled_while_subscribing_unsubscribes(redis_url: str, r: redis.Redis) -> None:
    async with AsyncClient(redis_url) as client:
        job_id = await client.submit_job("slow", {"seconds": 0.5})  # no worker: never finishes here
        channel = f"bananas:result:notify:{job_id}"
        results = client._result_waiter()
        results._confirmations = _NeverConfirmed()
        waiter = asyncio.create_task(client.get_result(job_id, timeout=30))
        await eventually(lambda: r.pubsub_numsub(channel)[0][1] == 1, what="the subscription")
        await asyncio.sleep(0.1)
        assert not waiter.done(), "parked waiting for the confirmation"
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await eventually(lambda: r.pubsub_numsub(channel)[0][1] == 0, what="the unsubscription")
        assert results._waiters == {}


async def test_wait_cancelled_while_waiting_unsubscribes(redis_url: str, r: redis.Redis) -> None:
    """E.g. ``asyncio.timeout`` around a wait: the subscription is given back."""
    async with AsyncClient(redis_url) as client:
        job_id = await client.submit_job("slow", {"seconds": 0.5})  # no worker: never finishes here
        channel = f"bananas:result:notify:{job_id}"
        waiter = asyncio.create_task(client.get_result(job_id, timeout=30))
        await eventually(lambda: r.pubsub_numsub(channel)[0][1] == 1, what="the subscription")
        await asyncio.sleep(0.2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await eventually(lambda: r.pubsub_numsub(channel)[0][1] == 0, what="the unsubscription")
        results = client._result_waiter()
        assert results._waiters == {} and results._confirmations == {}
        # The client still works afterwards.
        with pytest.raises(JobTimeoutError):
            await client.get_result(job_id, timeout=0.05)
        assert r.pubsub_numsub(channel)[0][1] == 0
