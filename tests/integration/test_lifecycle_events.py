"""Job events (docs/EVENTS.md): every transition is emitted once, after Redis applied it,
to listeners registered with ``@registry.on``; a listener that raises never breaks a job.
Also: give-backs at shutdown cost no attempt (issue 9, item 13)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis
from support import Workers, eventually, job_record, status_of

from bananas import Client, EventKind, Fail, Job, JobEvent, Registry, Retry
from bananas.errors import ValidationError


def recording_registry() -> tuple[Registry, list[JobEvent]]:
    registry = Registry()
    seen: list[JobEvent] = []
    registry.on()(seen.append)
    return registry, seen


def kinds_of(events: list[JobEvent], job_id: str) -> list[str]:
    return [e.kind.value for e in events if e.job_id == job_id]


async def test_success_emits_started_then_succeeded(workers: Workers, client: Client) -> None:
    registry, seen = recording_registry()

    @registry.handler("resize")
    async def resize(job: Job) -> int:
        return 1

    await workers.start(registry, routing_keys=("gpu",))
    job_id = client.submit_job("resize", {"w": 1}, "high", routing_key="gpu")
    await eventually(lambda: EventKind.SUCCEEDED in kinds_of(seen, job_id), what="the succeeded event")
    assert kinds_of(seen, job_id) == ["started", "succeeded"]
    done = next(e for e in seen if e.kind is EventKind.SUCCEEDED)
    assert (done.name, done.routing_key, done.priority, done.attempt) == ("resize", "gpu", "high", 1)
    assert done.duration_s is not None and done.duration_s >= 0
    assert done.error is None and done.applied
    assert done.worker_id and done.at > 0
    started = next(e for e in seen if e.kind is EventKind.STARTED)
    assert started.duration_s is None


async def test_retry_then_dead_events_carry_the_error(workers: Workers, client: Client) -> None:
    registry, seen = recording_registry()

    @registry.handler("flaky")
    def flaky(job: Job) -> None:
        raise ValueError("boom")

    await workers.start(registry, routing_keys=("email",))
    job_id = client.submit_job("flaky", None, routing_key="email", max_retries=1)
    await eventually(lambda: EventKind.DEAD in kinds_of(seen, job_id), what="the dead event")
    assert kinds_of(seen, job_id) == ["started", "retrying", "started", "dead"]
    retrying = next(e for e in seen if e.kind is EventKind.RETRYING)
    assert retrying.error is not None and retrying.error.startswith("ValueError: boom")
    assert retrying.retry_at is not None and retrying.attempt == 1
    dead = next(e for e in seen if e.kind is EventKind.DEAD)
    assert dead.attempt == 2 and dead.duration_s is not None


async def test_listeners_by_kind_and_a_raising_listener_breaks_nothing(workers: Workers, client: Client) -> None:
    registry = Registry()
    only_dead: list[JobEvent] = []
    registry.on(EventKind.DEAD, "parked")(only_dead.append)

    @registry.on()
    def broken(event: JobEvent) -> None:
        raise RuntimeError("listener bug")

    @registry.handler("fails")
    def fails(job: Job) -> None:
        raise Fail("no")

    @registry.handler("works")
    def works(job: Job) -> str:
        return "ok"

    await workers.start(registry, routing_keys=("default",))
    bad = client.submit_job("fails", None)
    good = client.submit_job("works", None)
    await eventually(lambda: client.get_result(good) == "ok", what="the good job's result")
    await eventually(lambda: only_dead, what="the dead event")
    assert [(e.kind, e.job_id) for e in only_dead] == [(EventKind.DEAD, bad)]


def test_unknown_event_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown event kind"):
        Registry().on("finished")


async def test_parked_event(workers: Workers, client: Client) -> None:
    registry, seen = recording_registry()

    @registry.handler("other")
    def other(job: Job) -> None:
        return None

    await workers.start(registry, routing_keys=("gpu",))
    job_id = client.submit_job("train", None, routing_key="gpu")
    await eventually(lambda: kinds_of(seen, job_id) == ["parked"], what="the parked event")
    assert seen[-1].error is not None and "no handler" in seen[-1].error


async def test_given_back_at_shutdown_costs_no_attempt(workers: Workers, client: Client, r: redis.Redis) -> None:
    """With max_retries=1, a job given back at shutdown still has both attempts left."""
    registry, seen = recording_registry()
    started = asyncio.Event()
    runs: list[int] = []

    @registry.handler("slow")
    async def slow(job: Job) -> None:
        runs.append(job.attempts)
        started.set()
        await asyncio.sleep(60)

    worker = await workers.start(registry, routing_keys=("gpu",), shutdown_grace=0.2)
    job_id = client.submit_job("slow", None, routing_key="gpu", max_retries=1)
    await asyncio.wait_for(started.wait(), 10)
    await workers.stop(worker)
    record = job_record(r, job_id)
    assert record is not None
    assert (record["status"], record["attempts"]) == ("pending", 0)
    assert kinds_of(seen, job_id) == ["started", "given_back"]

    # The next worker fails it once: a retry, not the dead letters.
    registry2 = Registry()

    @registry2.handler("slow")
    def fails_once(job: Job) -> None:
        runs.append(job.attempts)
        if job.attempts == 1:
            raise Retry("once", delay=0)

    await workers.start(registry2, routing_keys=("gpu",))
    await eventually(lambda: status_of(r, job_id) == "completed", what="the job to complete on its 2nd attempt")
    assert runs == [1, 1, 2]


async def test_listener_sees_no_payload(workers: Workers, client: Client) -> None:
    registry, seen = recording_registry()

    @registry.handler("secret")
    def secret(job: Job) -> None:
        return None

    await workers.start(registry, routing_keys=("default",))
    job_id = client.submit_job("secret", {"password": "hunter2"})
    await eventually(lambda: "succeeded" in kinds_of(seen, job_id), what="the job to succeed")
    as_text: list[Any] = [json.dumps(str(e)) for e in seen]
    assert not any("hunter2" in t for t in as_text)
