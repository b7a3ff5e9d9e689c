from __future__ import annotations

import asyncio

import redis

from bananas import Client, Job, JobStatus, Priority, Registry, Worker, WorkerSettings


async def test_submit_and_run(redis_url: str, r: redis.Redis) -> None:
    registry = Registry()
    seen: list[str] = []

    @registry.handler("add")
    def add(job: Job) -> int:
        seen.append(job.routing_key)
        return int(job.payload["a"]) + int(job.payload["b"])

    client = Client(redis_url)
    job_id = client.submit_job("add", {"a": 1, "b": 2}, Priority.HIGH, routing_key="gpu")
    assert r.llen("bananas:route:gpu:queue:high") == 1
    worker = Worker(registry, WorkerSettings(redis_url=redis_url, routing_keys=("gpu",)))
    task = asyncio.create_task(worker.run())
    for _ in range(200):
        job = client.get_job(job_id)
        if job and job.status is JobStatus.COMPLETED:
            break
        await asyncio.sleep(0.02)
    worker.stop()
    await task
    assert seen == ["gpu"]
    job = client.get_job(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED and job.attempts == 1
