"""Jobs without a handler, and WORKER_JOB_TYPES: a worker never runs or fails a job it
cannot run; the job waits, visible, for a worker that can (issue 6, handler mismatch)."""

from __future__ import annotations

import asyncio
import json
import time

import redis
from selection_support import Pool, command_calls, eventually, invoke, record

from bananas import Client, Job, Registry


class Runs:
    """Handlers that record (worker label, job name, payload) as they run."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, object]] = []

    def registry(self, label: str, *names: str) -> Registry:
        registry = Registry()
        for name in names:

            async def handler(job: Job, label: str = label) -> None:
                self.seen.append((label, job.name, job.payload))

            registry.add(name, handler)
        return registry

    def of(self, name: str) -> list[tuple[str, str, object]]:
        return [run for run in self.seen if run[1] == name]


async def test_job_without_handler_waits_visibly_then_runs_where_it_can(
    pool: Pool, client: Client, redis_url: str, r: redis.Redis
) -> None:
    runs = Runs()
    orphan = client.submit_job("transcode", 1)
    behind = client.submit_many("resize", list(range(3)))
    r.config_resetstat()
    plain = await pool.start(runs.registry("plain", "resize"), concurrency=1)
    await eventually(lambda: len(runs.of("resize")) == 3, what="the jobs behind the orphan")

    rec = record(r, orphan)
    assert rec["status"] == "pending" and rec["attempts"] == 0
    assert "no handler for 'transcode'" in rec["parked"]["reason"]
    assert rec["parked"]["by"] == plain.worker_id
    assert r.llen("bananas:queue:dead") == 0
    assert all(record(r, i)["status"] == "completed" for i in behind)

    # Moved once, then left alone: no pop/park loop while it waits.
    await asyncio.sleep(1.3)
    assert command_calls(r, "lpush") == 1
    assert record(r, orphan)["attempts"] == 0

    # Visible: `bananas queues` lists it as waiting for a worker that runs it.
    shown = invoke(redis_url, "queues")
    assert shown.returncode == 0, shown.stderr
    assert "waiting for a worker that runs them" in shown.stdout
    assert any(line.split() == ["default:normal", "transcode", "1"] for line in shown.stdout.splitlines()), shown.stdout
    parked = json.loads(invoke(redis_url, "queues", "--json").stdout)["parked"]
    assert [(p["routing_key"], p["priority"], p["job_name"], p["waiting"]) for p in parked] == [
        ("default", "normal", "transcode", 1)
    ]

    # A later job of that name queues behind the parked one; a worker that has the
    # handler takes the parked list first, so the first one keeps its place in line.
    client.submit_job("transcode", 2)
    await pool.start(runs.registry("media", "transcode"), concurrency=1)
    await eventually(lambda: len(runs.of("transcode")) == 2, what="transcode jobs on the media worker")
    assert [(label, payload) for label, _, payload in runs.of("transcode")] == [("media", 1), ("media", 2)]
    rec = record(r, orphan)
    assert rec["status"] == "completed" and rec["attempts"] == 1
    await eventually(lambda: "waiting for" not in invoke(redis_url, "queues").stdout, what="parked list to empty")


async def test_unknown_jobs_fail_fails_at_once(pool: Pool, client: Client, r: redis.Redis) -> None:
    runs = Runs()
    orphan = client.submit_job("transcode", 1)
    await pool.start_env(runs.registry("plain", "resize"), {"WORKER_UNKNOWN_JOBS": "fail"})
    await eventually(lambda: record(r, orphan)["status"] == "failed", what="the orphan to fail")
    rec = record(r, orphan)
    assert "no handler registered for job name 'transcode'" in rec["error"]
    assert "parked" not in rec
    assert r.lrange("bananas:queue:dead", 0, -1) == [orphan.encode()]


async def test_job_types_split_a_queue_between_workers(pool: Pool, client: Client, r: redis.Redis) -> None:
    """Two workers with the same handlers, each limited to some job names: each job runs
    once on the worker meant for it, and a job taken by the other is moved once."""
    runs = Runs()
    ids: list[str] = []
    for i in range(10):
        ids += client.submit_many("resize", [i]) + client.submit_many("email", [i])
    r.config_resetstat()
    await pool.start_env(runs.registry("images", "resize", "email"), {"WORKER_JOB_TYPES": "resize"})
    await pool.start_env(runs.registry("mail", "resize", "email"), {"WORKER_JOB_TYPES": "email"})
    await eventually(lambda: len(runs.seen) == 20, what="all 20 jobs")
    await asyncio.sleep(0.2)
    assert {label for label, name, _ in runs.seen if name == "resize"} == {"images"}
    assert {label for label, name, _ in runs.seen if name == "email"} == {"mail"}
    assert sorted(int(str(p)) for _, name, p in runs.seen if name == "email") == list(range(10))
    for job_id in ids:
        rec = record(r, job_id)
        assert rec["status"] == "completed" and rec["attempts"] == 1
        if "parked" in rec:
            assert "not among this worker's job types" in rec["parked"]["reason"]
    moved = command_calls(r, "lpush")
    print(f"\nWORKER_JOB_TYPES split, 20 jobs on 2 workers: {moved} moved to a parked list")
    assert moved <= 20, "each job is moved to its name's list at most once"


async def test_job_types_worker_leaves_other_names_without_looping(pool: Pool, client: Client, r: redis.Redis) -> None:
    runs = Runs()
    others = client.submit_many("email", list(range(5)))
    mine = client.submit_many("resize", list(range(5)))
    r.config_resetstat()
    await pool.start_env(runs.registry("images", "resize", "email"), {"WORKER_JOB_TYPES": "resize"})
    await eventually(lambda: len(runs.of("resize")) == 5, what="resize jobs behind the email jobs")
    await asyncio.sleep(1.5)  # more than the fetcher's refresh interval
    evalsha = command_calls(r, "evalsha")
    print(f"\nWORKER_JOB_TYPES=resize with 5 email jobs queued ahead: EVALSHA over ~1.5 s idle: {evalsha}")
    assert runs.of("email") == []
    assert command_calls(r, "lpush") == 5, "each email job was moved once, and only once"
    assert evalsha < 60, "the worker does not spin on the jobs it leaves"
    for job_id in others:
        rec = record(r, job_id)
        assert rec["status"] == "pending" and rec["attempts"] == 0
        assert rec["parked"]["reason"].startswith("'email' is not among this worker's job types")
    assert all(record(r, i)["status"] == "completed" for i in mine)


async def test_idle_worker_picks_up_a_job_parked_by_another(pool: Pool, client: Client, r: redis.Redis) -> None:
    """The park step publishes a wake-up: an idle worker that runs the name takes the job
    from the parked list at once, without waiting for its next look at the queues."""
    runs = Runs()
    await pool.start_env(runs.registry("media", "transcode", "resize"), {"WORKER_JOB_TYPES": "transcode"})
    await pool.start_env(runs.registry("plain", "resize"), {"WORKER_CONCURRENCY": "4"})
    latencies: list[float] = []
    parked = 0
    for i in range(6):
        await asyncio.sleep(0.15)
        start = time.perf_counter()
        job_id = client.submit_job("transcode", i)

        def completed(job_id: str = job_id) -> bool:
            return bool(record(r, job_id)["status"] == "completed")

        await eventually(completed, what="the transcode job")
        latencies.append(time.perf_counter() - start)
        parked += "parked" in record(r, job_id)
    print(f"\nidle pick-up of transcode jobs ({parked} of 6 went through the parked list): "
          f"max {max(latencies) * 1000:.0f} ms")  # fmt: skip
    assert {label for label, name, _ in runs.seen if name == "transcode"} == {"media"}
    assert max(latencies) < 1.0, latencies
