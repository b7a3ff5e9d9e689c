"""Handlers for ``bananas demo``: each records which worker pool ran it."""

from __future__ import annotations

import os

import redis

from bananas.core.job import Job
from bananas.worker.registry import Registry

registry = Registry()

#: Hash job id -> pool name, written by the demo handlers (demo only).
DEMO_RAN_KEY = "bananas:demo:ran"

_client: redis.Redis | None = None


def _record(job: Job) -> dict[str, str]:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["REDIS_URL"])
    pool = os.environ.get("BANANAS_DEMO_POOL", "?")
    _client.hset(DEMO_RAN_KEY, job.id, pool)
    return {"pool": pool}


@registry.handler("process_image")
def process_image(job: Job) -> dict[str, str]:
    return _record(job)


@registry.handler("send_email")
def send_email(job: Job) -> dict[str, str]:
    return _record(job)


@registry.handler("generate_report")
async def generate_report(job: Job) -> dict[str, str]:
    return _record(job)
