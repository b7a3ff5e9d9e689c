"""Handlers run by the fault suite's worker subprocesses (``faults.app:registry``).

Every handler records what it did in the *instrument* Redis (``TEST_STORE_URL``), which
is never the server under test: a restarted or cut-off server must not lose the
evidence. ``test:runs`` counts completed handler runs per job id, ``test:starts`` counts
handler entries, and ``test:log`` lists ``id|pid`` per run, so the suite can tell which
process ran a duplicate.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis

from bananas import Job, Registry

if os.environ.get("TEST_CRASH_FILE") and os.path.exists(os.environ["TEST_CRASH_FILE"]):
    # Scenario 7: a child that dies at start-up, in a loop, until the file is removed.
    raise SystemExit(3)

#: The true time, for evidence (``stamp``), whatever TEST_CLOCK_SKEW says.
REAL_TIME = time.time
if os.environ.get("TEST_CLOCK_SKEW"):
    # Test-only hook (issue 9 item 4): this worker's host clock is off by that many seconds,
    # as libfaketime would make it. Python code reads wall time through ``time.time``.
    _skew = float(os.environ["TEST_CLOCK_SKEW"])
    time.time = lambda: REAL_TIME() + _skew

registry = Registry()
_client: redis.Redis | None = None


def store() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["TEST_STORE_URL"])
    return _client


def started(job: Job) -> None:
    store().hincrby("test:starts", job.id, 1)


def ran(job: Job) -> None:
    pipe = store().pipeline(transaction=True)
    pipe.hincrby("test:runs", job.id, 1)
    pipe.rpush("test:log", f"{job.id}|{os.getpid()}")
    pipe.execute()


def _ms(job: Job) -> float:
    payload: Any = job.payload
    return float(payload.get("ms", 0)) / 1000 if isinstance(payload, dict) else 0.0


@registry.handler("work")
async def work(job: Job) -> int:
    await asyncio.sleep(_ms(job))
    ran(job)
    return 1


@registry.handler("work_sync")
def work_sync(job: Job) -> int:
    time.sleep(_ms(job))
    ran(job)
    return 1


@registry.handler("stamp")
async def stamp(job: Job) -> int:
    """Notes the true time it started (``test:started_at``), then runs ``payload.ms``."""
    store().hsetnx("test:started_at", job.id, repr(REAL_TIME()))
    await asyncio.sleep(_ms(job))
    ran(job)
    return 1


@registry.handler("slow")
async def slow(job: Job) -> None:
    """Runs ``payload.seconds``; the hung role (``TEST_ROLE=hung``) fails at the end if asked."""
    started(job)
    await asyncio.sleep(float(job.payload["seconds"]))
    ran(job)
    if os.environ.get("TEST_ROLE") == "hung" and job.payload.get("raise"):
        raise RuntimeError("late failure from the hung worker")


@registry.handler("poison")
def poison(job: Job) -> None:
    """Kills its worker process every time (after ``payload.delay`` seconds), before any
    outcome can be written."""
    started(job)
    time.sleep(float(job.payload.get("delay", 0)) if isinstance(job.payload, dict) else 0)
    os._exit(1)


@registry.handler("boom")
def boom(job: Job) -> None:
    started(job)
    raise ValueError("boom")


# -- workflows (tests/faults/test_workflow_kill.py) ------------------------------------


@registry.handler("wf_step")
async def wf_step(job: Job) -> int:
    """A chain step or chord member: adds its ``v`` to the previous step's result. With
    ``die_once``, the first run kills its own process (SIGKILL) once the work is done and
    before its outcome is written: a kill at the moment a chord's last member finishes."""
    await asyncio.sleep(_ms(job))
    ran(job)
    if job.payload.get("die_once") and store().set(f"test:died:{job.id}", os.getpid(), nx=True):
        os.kill(os.getpid(), 9)
    return int(job.payload["v"]) + int(job.parent_result or 0)


@registry.handler("wf_callback")
async def wf_callback(job: Job) -> int:
    """A chord callback: counts its runs per workflow and checks it got every member's
    result in the group's order."""
    await asyncio.sleep(_ms(job))
    if job.parent_result != job.payload["expect"]:
        store().rpush("test:bad_parent", f"{job.id}|{job.parent_result!r}")
    ran(job)
    return sum(job.parent_result)
