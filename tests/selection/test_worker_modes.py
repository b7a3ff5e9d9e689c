"""WORKER_MODE presets: thin, specialized, job-specialized, scheduler-only (docs/WORKER_MODES.md)."""

from __future__ import annotations

import asyncio

import pytest
import redis
from selection_support import Pool, Probe, eventually, invoke, one_line_error, record, run_cli

from bananas import Client, Job, Registry, WorkerSettings
from bananas.config import QueueSelection, WorkerMode
from bananas.errors import ConfigurationError


def registry_of(seen: list[str], *names: str) -> Registry:
    registry = Registry()
    for name in names:

        async def handler(job: Job) -> None:
            seen.append(job.name)

        registry.add(name, handler)
    return registry


async def test_scheduler_only_promotes_but_takes_no_jobs(pool: Pool, client: Client, r: redis.Redis) -> None:
    ready = client.submit_job("task", 1)
    later = client.schedule_job("task", 2, delay=0.3)
    seen: list[str] = []
    await pool.start_env(registry_of(seen, "task"), {"WORKER_MODE": "scheduler-only"})
    await eventually(lambda: r.zcard("bananas:queue:scheduled") == 0, what="the due job to be promoted")
    await eventually(lambda: r.llen("bananas:route:default:queue:normal") == 2, what="the due job to be ready")
    await asyncio.sleep(1.2)
    assert seen == []
    assert r.llen("bananas:route:default:queue:normal") == 2
    assert record(r, ready)["status"] == "pending"
    assert record(r, later)["status"] == "pending"


async def test_thin_runs_one_job_at_a_time_and_leaves_maintenance(
    pool: Pool, client: Client, r: redis.Redis, redis_url: str
) -> None:
    assert WorkerSettings.from_env({"WORKER_MODE": "thin"}).concurrency == 1
    assert WorkerSettings.from_env({"WORKER_MODE": "thin", "WORKER_CONCURRENCY": "4"}).concurrency == 4
    probe = Probe(redis_url)
    registry = Registry()
    registry.add("task", probe.sleeper(0.05))
    ids = client.submit_many("task", [None] * 6)
    later = client.schedule_job("task", None, delay=0.2)
    await pool.start_env(registry, {"WORKER_MODE": "thin"})
    await eventually(lambda: all(record(r, i)["status"] == "completed" for i in ids), what="6 jobs")
    assert probe.peak == {"default": 1}
    await asyncio.sleep(1.0)
    # Promotion of due jobs is left to another process (a default or scheduler-only worker).
    assert record(r, later)["status"] == "scheduled"
    probe.close()


async def test_specialized_serves_named_keys_only(pool: Pool, client: Client, r: redis.Redis) -> None:
    seen: list[str] = []
    gpu = client.submit_job("task", 1, routing_key="gpu")
    other = client.submit_job("task", 2)
    r.lpush("bananas:queue:normal", "legacy-id")  # a pre-routing list: not for specialized workers
    worker = await pool.start_env(
        registry_of(seen, "task"), {"WORKER_MODE": "specialized", "WORKER_ROUTING_KEYS": "gpu"}
    )
    assert worker.settings.mode is WorkerMode.SPECIALIZED
    await eventually(lambda: record(r, gpu)["status"] == "completed", what="the gpu job")
    await asyncio.sleep(0.3)
    assert record(r, other)["status"] == "pending"
    assert r.llen("bananas:queue:normal") == 1


async def test_job_specialized_runs_only_its_names(pool: Pool, client: Client, r: redis.Redis) -> None:
    seen: list[str] = []
    mine = client.submit_many("resize", [1, 2])
    theirs = client.submit_job("email", 3)
    await pool.start_env(
        registry_of(seen, "resize", "email"), {"WORKER_MODE": "job-specialized", "WORKER_JOB_TYPES": "resize"}
    )
    await eventually(lambda: all(record(r, i)["status"] == "completed" for i in mine), what="resize jobs")
    await asyncio.sleep(0.3)
    assert seen == ["resize", "resize"]
    assert record(r, theirs)["status"] == "pending" and record(r, theirs)["attempts"] == 0


def test_specialized_refuses_default_from_the_console_script(cli_env: dict[str, str]) -> None:
    line = one_line_error(run_cli({**cli_env, "WORKER_MODE": "specialized"}, "worker", "apps.basic:registry"))
    assert "specialized" in line and "'default'" in line, line


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"WORKER_MODE": "specialized", "WORKER_ROUTING_KEYS": "gpu,default"}, "'default'"),
        ({"WORKER_MODE": "job-specialized"}, "WORKER_JOB_TYPES"),
        ({"WORKER_MODE": "job-specialized", "WORKER_JOB_TYPES": " , "}, "WORKER_JOB_TYPES"),
        ({"WORKER_MODE": "fast"}, "WORKER_MODE"),
        ({"WORKER_QUEUE_SELECTION": "random"}, "WORKER_QUEUE_SELECTION"),
        ({"WORKER_ROUTING_KEYS": "gpu:6,default", "WORKER_QUEUE_SELECTION": "strict"}, "weighted"),
        ({"WORKER_ROUTING_KEYS": "gpu:0"}, "gpu"),
        ({"WORKER_ROUTING_KEYS": "gpu:x"}, "gpu"),
        ({"WORKER_ROUTE_CONCURRENCY": "gpu"}, "WORKER_ROUTE_CONCURRENCY"),
        ({"WORKER_ROUTE_CONCURRENCY": "gpu:0"}, "WORKER_ROUTE_CONCURRENCY"),
        ({"WORKER_MAX_WAIT": "low"}, "WORKER_MAX_WAIT"),
        ({"WORKER_MAX_WAIT": "low:-1"}, "WORKER_MAX_WAIT"),
        ({"WORKER_UNKNOWN_JOBS": "retry"}, "WORKER_UNKNOWN_JOBS"),
    ],
)
def test_bad_worker_settings_are_one_line_errors(redis_url: str, env: dict[str, str], mentions: str) -> None:
    line = one_line_error(invoke(redis_url, "worker", "apps.basic:registry", env=env))
    assert mentions in line, line


def test_weights_imply_weighted_selection() -> None:
    settings = WorkerSettings.from_env({"WORKER_ROUTING_KEYS": "gpu:6,email:3,default"})
    assert settings.queue_selection is QueueSelection.WEIGHTED
    assert settings.routing_keys == ("gpu", "email", "default")
    assert settings.route_weights == (("gpu", 6), ("email", 3))
    with pytest.raises(ConfigurationError):
        WorkerSettings.from_env({"WORKER_ROUTING_KEYS": "gpu:6", "WORKER_QUEUE_SELECTION": "priority-first"})


def test_settings_survive_the_supervisor_round_trip() -> None:
    """``--processes N`` children rebuild their settings from ``to_env``."""
    env = {
        "WORKER_ROUTING_KEYS": "gpu:6,email:3,default",
        "WORKER_ROUTE_CONCURRENCY": "gpu:2",
        "WORKER_JOB_TYPES": "resize,email",
        "WORKER_MAX_WAIT": "low:1.5,email:60",
        "WORKER_MODE": "job-specialized",
        "WORKER_UNKNOWN_JOBS": "fail",
    }
    settings = WorkerSettings.from_env(env)
    assert WorkerSettings.from_env(settings.to_env()) == settings


def test_queue_selection_flag(redis_url: str) -> None:
    """``bananas worker --queue-selection`` next to WORKER_QUEUE_SELECTION; the flag wins."""
    line = one_line_error(invoke(redis_url, "worker", "apps.basic:registry", "--queue-selection", "random"))
    assert "--queue-selection" in line, line
    settings = WorkerSettings.from_env({"WORKER_QUEUE_SELECTION": "strict"}, queue_selection="priority-first")
    assert settings.queue_selection is QueueSelection.PRIORITY_FIRST


@pytest.mark.parametrize(
    ("flags", "mentions"),
    [
        (["--mode", "fast"], "--mode"),
        (["--mode", "specialized"], "'default'"),
        (["--mode", "job-specialized"], "WORKER_JOB_TYPES"),
        (["--route-concurrency", "gpu"], "--route-concurrency"),
        (["--max-wait", "low:0"], "--max-wait"),
        (["--job-types", " , "], "--job-types"),
        (["--routing-keys", "gpu:6", "--queue-selection", "strict"], "weighted"),
    ],
)
def test_bad_worker_flags_are_one_line_errors(redis_url: str, flags: list[str], mentions: str) -> None:
    line = one_line_error(invoke(redis_url, "worker", "apps.basic:registry", *flags))
    assert mentions in line, line
