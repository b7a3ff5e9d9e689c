"""Results reach the caller: values, the stored hash, and its lifetime."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis
import results_app
from results_support import StartWorker, eventually, settings, thread_worker

from bananas import AsyncClient, Client, JobResult, JobStatus
from bananas.config import DEFAULT_RESULT_FAILURE_TTL, DEFAULT_RESULT_TTL
from bananas.errors import JobFailedError, ValidationError


async def test_async_submit_and_wait_and_get_result(redis_url: str, start_worker: StartWorker) -> None:
    await start_worker(routing_keys=("math", "default"))
    async with AsyncClient(redis_url) as client:
        value = await client.submit_and_wait("add", {"a": 2, "b": 40}, routing_key="math", timeout=10)
        assert value["sum"] == 42
        # The same value later, by id, with or without waiting.
        assert await client.get_result(value["id"]) == value
        assert await client.get_result(value["id"], timeout=5) == value
        # Any JSON value round-trips, including null, which get_job_result tells apart from "not finished".
        payload = {"list": [1, 2.5, "x", None, True], "nested": {"k": ["é", "🍌"]}}
        assert await client.submit_and_wait("echo", payload, timeout=10) == payload
        assert await client.submit_and_wait("echo", "just a string", timeout=10) == "just a string"
        job_id = await client.submit_job("nothing", None)
        assert await client.get_result(job_id, timeout=10) is None
        found = await client.get_job_result(job_id)
        assert found is not None and found.ok and found.result is None


def test_sync_submit_and_wait_and_get_result(redis_url: str) -> None:
    with thread_worker(results_app.registry, settings(redis_url)), Client(redis_url) as client:
        value = client.submit_and_wait("add", {"a": 1, "b": 2}, timeout=10)
        assert value["sum"] == 3
        assert client.get_result(value["id"]) == value
        assert client.get_result(value["id"], timeout=5) == value
        assert client.submit_and_wait("echo", [1, {"two": 2}], "high", timeout=10) == [1, {"two": 2}]
        job_id = client.submit_job("slow", {"seconds": 0.3, "value": "late"})
        assert client.get_result(job_id) is None, "not finished yet: no waiting without a timeout"
        assert client.get_result(job_id, timeout=10) == {"value": "late", "slept": 0.3}


def test_get_result_of_unknown_job_is_none(redis_url: str) -> None:
    with Client(redis_url) as client:
        assert client.get_result("no-such-job") is None
        assert client.get_job_result("no-such-job") is None


async def test_result_hash_fields_and_default_ttls(redis_url: str, r: redis.Redis, start_worker: StartWorker) -> None:
    worker = await start_worker(routing_keys=("math",))
    before = datetime.now(UTC)
    async with AsyncClient(redis_url) as client:
        ok = await client.submit_and_wait("add", {"a": 1, "b": 1}, "high", routing_key="math", timeout=10)
        job_id = await client.submit_job("explode", "x", routing_key="math", max_retries=0)
        with pytest.raises(JobFailedError):
            await client.get_result(job_id, timeout=10)
    after = datetime.now(UTC)

    stored = {k.decode(): v.decode() for k, v in r.hgetall(f"bananas:result:{ok['id']}").items()}
    assert stored["status"] == "completed"
    assert stored["result"] == f'{{"sum":2,"id":"{ok["id"]}"}}'
    assert stored["name"] == "add" and stored["routing_key"] == "math"
    assert stored["attempts"] == "1"
    assert stored["worker"] == worker.worker_id
    assert "error" not in stored
    assert set(stored) == {
        "status", "result", "name", "routing_key", "attempts", "started_at", "finished_at", "completed_at",
        "duration_ms", "worker",
    }  # fmt: skip
    parsed = JobResult.from_hash(ok["id"], r.hgetall(f"bananas:result:{ok['id']}"))
    assert parsed.started_at is not None and parsed.finished_at is not None and parsed.duration_ms is not None
    assert before <= parsed.started_at <= parsed.finished_at <= after
    assert parsed.duration_ms == pytest.approx((parsed.finished_at - parsed.started_at).total_seconds() * 1000, abs=1)
    assert stored["duration_ms"].isdigit(), "whole milliseconds, as the original's readers parse them"
    assert parsed.started_at.utcoffset() is not None, "timestamps carry an offset (RFC 3339)"
    assert 0 < r.ttl(f"bananas:result:{ok['id']}") <= DEFAULT_RESULT_TTL
    assert r.ttl(f"bananas:result:{ok['id']}") >= DEFAULT_RESULT_TTL - 60

    failed = {k.decode(): v.decode() for k, v in r.hgetall(f"bananas:result:{job_id}").items()}
    assert failed["status"] == "failed"
    assert failed["error"].startswith("ValueError: exploded on purpose: x")
    assert "Traceback" in failed["error"]
    assert "result" not in failed
    assert failed["worker"] == worker.worker_id and failed["name"] == "explode" and failed["attempts"] == "1"
    assert DEFAULT_RESULT_FAILURE_TTL - 60 <= r.ttl(f"bananas:result:{job_id}") <= DEFAULT_RESULT_FAILURE_TTL


async def test_result_ttl_settings(redis_url: str, r: redis.Redis, start_worker: StartWorker) -> None:
    await start_worker(result_ttl=120, result_failure_ttl=240)
    async with AsyncClient(redis_url) as client:
        ok = await client.submit_and_wait("add", {"a": 1, "b": 1}, timeout=10)
        bad = await client.submit_job("explode", None, max_retries=0)
        with pytest.raises(JobFailedError):
            await client.get_result(bad, timeout=10)
    assert 60 < r.ttl(f"bananas:result:{ok['id']}") <= 120
    assert 180 < r.ttl(f"bananas:result:{bad}") <= 240


async def test_per_job_result_ttl_overrides_the_settings(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    await start_worker(result_ttl=300, result_failure_ttl=600)
    async with AsyncClient(redis_url) as client:
        ok = await client.submit_and_wait("add", {"a": 1, "b": 1}, timeout=10, result_ttl=50)
        with pytest.raises(JobFailedError) as failed:
            await client.submit_and_wait("explode", None, timeout=10, max_retries=0, result_ttl=70)
        kept = await client.submit_and_wait("add", {"a": 1, "b": 2}, timeout=10, result_ttl=100_000)
        scheduled = await client.schedule_job("add", {"a": 2, "b": 2}, delay=0.05, result_ttl=40)
        assert (await client.get_result(scheduled, timeout=10))["sum"] == 4
        # result_ttl=0: the job runs but no result is stored.
        unstored = await client.submit_job("add", {"a": 0, "b": 0}, result_ttl=0)
        await eventually(lambda: _completed(client, unstored), what="the result_ttl=0 job to complete")
        assert await client.get_job_result(unstored) is None
        assert await client.get_result(unstored) is None
        for bad in (-1, 1.5, True, "60"):
            with pytest.raises(ValidationError):
                await client.submit_job("add", {"a": 1, "b": 1}, result_ttl=bad)  # type: ignore[arg-type]
    assert 0 < r.ttl(f"bananas:result:{ok['id']}") <= 50
    assert 0 < r.ttl(f"bananas:result:{failed.value.job_id}") <= 70
    assert 90_000 < r.ttl(f"bananas:result:{kept['id']}") <= 100_000
    assert 0 < r.ttl(f"bananas:result:{scheduled}") <= 40
    assert not r.exists(f"bananas:result:{unstored}")


async def _completed(client: AsyncClient, job_id: str) -> bool:
    job = await client.get_job(job_id)
    return job is not None and job.status is JobStatus.COMPLETED


async def test_result_ttl_zero_setting_stores_nothing(
    redis_url: str, r: redis.Redis, start_worker: StartWorker
) -> None:
    await start_worker(result_ttl=0, result_failure_ttl=0)
    async with AsyncClient(redis_url) as client:
        ok = await client.submit_job("add", {"a": 1, "b": 1})
        bad = await client.submit_job("explode", None, max_retries=0)
        await eventually(lambda: _completed(client, ok), what="the job to complete")
        await eventually(lambda: client.get_job(bad), what="the failing job's record")
        await eventually(lambda: r.lrange("bananas:queue:dead", 0, -1), what="the failed job in the dead letters")
        assert await client.get_result(ok) is None
        assert await client.get_result(bad) is None
    assert r.keys("bananas:result:*") == []
