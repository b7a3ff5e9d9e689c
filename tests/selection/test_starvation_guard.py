"""Starvation guard for strict selection: WORKER_MAX_WAIT lets a job that waited too
long run ahead of the strict order (issue 6, "Starvation guard")."""

from __future__ import annotations

import asyncio
import time

import pytest
from selection_support import Pool, eventually

from bananas import Client, Job, Registry


def busy_registry(seen: list[tuple[str, str, float]], seconds: float) -> Registry:
    registry = Registry()

    async def task(job: Job) -> None:
        seen.append((job.routing_key, job.priority.value, time.monotonic()))
        await asyncio.sleep(seconds)

    registry.add("task", task)
    return registry


BACKLOG = 120  # at 50 ms each, ~6 s of work on the preferred list


@pytest.mark.parametrize(
    ("env", "old", "busy"),
    [
        ({"WORKER_MAX_WAIT": "low:1"}, ("default", "low"), ("default", "high")),
        ({"WORKER_ROUTING_KEYS": "urgent,bulk", "WORKER_MAX_WAIT": "bulk:1"}, ("bulk", "normal"), ("urgent", "high")),
    ],
    ids=["by-priority", "by-routing-key"],
)
async def test_old_job_runs_ahead_of_a_steady_backlog(
    pool: Pool, client: Client, env: dict[str, str], old: tuple[str, str], busy: tuple[str, str]
) -> None:
    client.submit_job("task", "old", old[1], routing_key=old[0])
    client.submit_many("task", ["busy"] * BACKLOG, busy[1], routing_key=busy[0])
    seen: list[tuple[str, str, float]] = []
    started = time.monotonic()
    await pool.start_env(busy_registry(seen, 0.05), {**env, "WORKER_CONCURRENCY": "1"})
    await eventually(lambda: any(k == old[0] and p == old[1] for k, p, _ in seen), timeout=8, what="the old job")
    position = next(i for i, (k, p, _) in enumerate(seen) if (k, p) == old)
    at = seen[position][2] - started
    print(f"\nWORKER_MAX_WAIT {env['WORKER_MAX_WAIT']}: old job ran {at:.2f} s after start, "
          f"after {position} of {BACKLOG} backlog jobs")  # fmt: skip
    assert 0 < position < BACKLOG, "it ran ahead of the backlog, which was still there"
    assert at < 5.0, "within a few seconds"


async def test_without_guard_strict_order_makes_the_old_job_wait(pool: Pool, client: Client) -> None:
    old = client.submit_job("task", "old", "low")
    client.submit_many("task", ["busy"] * BACKLOG, "high")
    seen: list[tuple[str, str, float]] = []
    await pool.start_env(busy_registry(seen, 0.05), {"WORKER_CONCURRENCY": "1"})
    await asyncio.sleep(2.5)
    assert seen, "the worker is running the backlog"
    assert all(p == "high" for _, p, _ in seen), "strict order: low waits while high has jobs"
    assert client.get_job(old).status == "pending"  # type: ignore[union-attr]
