"""Limits: per-route concurrency in one worker, fleet-wide concurrency and rates kept in
Redis and obeyed by several workers at once (issue 6, "Limits")."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
import redis.asyncio as aioredis
from selection_support import (
    Pool,
    Probe,
    busiest_window,
    command_calls,
    eventually,
    invoke,
    one_line_error,
    rate_of,
    record,
    run_cli,
)

from bananas import Client, Job, Registry, WorkerSettings
from bananas.core.clock import SYSTEM_CLOCK
from bananas.redis.broker import Broker
from bananas.worker.fetcher import Fetcher


def probe_registry(probe: Probe, seconds: float, names: tuple[str, ...] = ("task",)) -> Registry:
    registry = Registry()
    for name in names:
        registry.add(name, probe.sleeper(seconds))
    return registry


async def test_route_concurrency_inside_one_worker(pool: Pool, client: Client, redis_url: str) -> None:
    """WORKER_ROUTE_CONCURRENCY=gpu:2 in a worker of concurrency 10: gpu at most 2 at a
    time while default jobs use the other 8 slots."""
    probe = Probe(redis_url)
    gpu = client.submit_many("task", [None] * 8, routing_key="gpu")
    other = client.submit_many("task", [None] * 24, routing_key="default")
    await pool.start_env(
        probe_registry(probe, 0.3),
        {"WORKER_ROUTING_KEYS": "gpu,default", "WORKER_CONCURRENCY": "10", "WORKER_ROUTE_CONCURRENCY": "gpu:2"},
    )
    await eventually(lambda: len(probe.starts) == len(gpu) + len(other), what="all jobs started")
    await eventually(lambda: probe.running_now("gpu") + probe.running_now("default") == 0, what="all jobs finished")
    print(f"\nWORKER_ROUTE_CONCURRENCY=gpu:2, concurrency 10: peak running {probe.peak}")
    assert probe.peak["gpu"] == 2
    assert probe.peak["default"] == 8
    probe.close()


async def test_fleet_concurrency_across_three_workers(
    pool: Pool, client: Client, redis_url: str, r: redis.Redis, cli_env: dict[str, str]
) -> None:
    done = run_cli(cli_env, "limits", "set", "gpu", "--concurrency", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "routing key gpu: concurrency 3"
    probe = Probe(redis_url)
    ids = client.submit_many("task", [None] * 18, routing_key="gpu")
    for _ in range(3):
        await pool.start(probe_registry(probe, 0.25), routing_keys=("gpu",), concurrency=4)
    await eventually(lambda: probe.running_now("gpu") == 3, what="3 gpu jobs running")
    listed = await asyncio.to_thread(run_cli, cli_env, "limits", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("routing key gpu: concurrency 3 (in flight "), listed.stdout
    await eventually(lambda: len(probe.starts) == len(ids), what="all gpu jobs started")
    await eventually(lambda: all(record(r, i)["status"] == "completed" for i in ids), what="all gpu jobs completed")
    print(f"\nfleet limit gpu --concurrency 3, 3 workers x concurrency 4: peak {probe.peak['gpu']}")
    assert probe.peak["gpu"] == 3
    assert int(r.hget("bananas:limits:inflight", "gpu") or 0) == 0
    assert r.hlen("bananas:lease:routes") == 0
    probe.close()


async def test_fleet_concurrency_slots_of_a_dead_worker_come_back(
    pool: Pool, client: Client, redis_url: str, r: redis.Redis
) -> None:
    """A worker that dies holding limited jobs: its slots return with its expired leases."""
    assert invoke(redis_url, "limits", "set", "gpu", "--concurrency", "2").returncode == 0
    ids = client.submit_many("task", [None] * 4, routing_key="gpu")
    # The "dead" worker: takes two jobs through the real dequeue step, never finishes them.
    settings = WorkerSettings(redis_url=redis_url, routing_keys=("gpu",), lease_seconds=0.5)
    conn = aioredis.Redis.from_url(redis_url)
    try:
        _, taken = await Fetcher(Broker(conn), settings, None, SYSTEM_CLOCK).fetch(4, {}, "dead-worker:1")
    finally:
        await conn.aclose()
    assert len(taken) == 2, "the fleet limit holds inside one dequeue call"
    assert int(r.hget("bananas:limits:inflight", "gpu") or 0) == 2
    probe = Probe(redis_url)
    await pool.start(probe_registry(probe, 0.05), routing_keys=("gpu",), concurrency=4, lease_seconds=1.0)
    await eventually(lambda: all(record(r, i)["status"] == "completed" for i in ids), what="all 4 jobs")
    assert probe.peak["gpu"] <= 2
    assert int(r.hget("bananas:limits:inflight", "gpu") or 0) == 0
    assert sorted(record(r, i).get("recoveries", 0) for i in ids) == [0, 0, 1, 1]
    probe.close()


async def test_rate_limited_key_does_not_hold_up_the_next_key(
    pool: Pool, client: Client, redis_url: str, r: redis.Redis
) -> None:
    """Strict order email > default, email limited to 5/s: default jobs run meanwhile."""
    assert invoke(redis_url, "limits", "set", "email", "--rate", "5/s").returncode == 0
    email = client.submit_many("task", [None] * 8, routing_key="email")
    default = client.submit_many("task", [None] * 30)
    probe = Probe(redis_url)
    await pool.start(probe_registry(probe, 0.01), routing_keys=("email", "default"), concurrency=4)
    await eventually(lambda: all(record(r, i)["status"] == "completed" for i in default), what="default jobs")
    assert sum(1 for _, key, _ in probe.starts if key == "email") < len(email)
    await eventually(lambda: all(record(r, i)["status"] == "completed" for i in email), what="email jobs")
    probe.close()


class StartTimes:
    """Async handlers that note when each job starts (one clock: the test process's)."""

    def __init__(self) -> None:
        self.starts: dict[str, list[float]] = {}

    def registry(self, *names: str) -> Registry:
        registry = Registry()
        for name in names:

            async def handler(job: Job, name: str = name) -> None:
                self.starts.setdefault(name, []).append(time.time())

            registry.add(name, handler)
        return registry

    def count(self, name: str) -> int:
        return len(self.starts.get(name, []))


def within_five_percent(measured: float, limit: float) -> None:
    assert measured <= limit * 1.05, f"rate {measured:.2f}/s exceeds {limit}/s by more than 5%"
    assert measured >= limit * 0.95, f"rate {measured:.2f}/s is more than 5% under {limit}/s"


async def test_route_rate_held_across_three_workers(
    pool: Pool, client: Client, r: redis.Redis, cli_env: dict[str, str]
) -> None:
    assert run_cli(cli_env, "limits", "set", "email", "--rate", "20/s").returncode == 0
    ids = client.submit_many("send_email", list(range(120)), routing_key="email")
    r.config_resetstat()
    times = StartTimes()
    for _ in range(3):
        await pool.start(times.registry("send_email"), routing_keys=("email",), concurrency=5)
    leased_peak = 0

    def finished() -> bool:
        nonlocal leased_peak
        leased_peak = max(leased_peak, int(r.zcard("bananas:leases")))
        return times.count("send_email") == len(ids)

    await eventually(finished, timeout=15, what="120 rate-limited jobs", interval=0.05)
    rate = rate_of(times.starts["send_email"])
    burst = busiest_window(times.starts["send_email"])
    await eventually(lambda: r.zcard("bananas:leases") == 0, what="last acks")
    print(f"\nlimits set email --rate 20/s, 3 workers, 120 jobs: measured {rate:.2f}/s; "
          f"busiest second {burst}; leased at once <= {leased_peak}; RPOP {command_calls(r, 'rpop')}, "
          f"EVALSHA {command_calls(r, 'evalsha')}")  # fmt: skip
    within_five_percent(rate, 20)
    assert burst <= 20 * 1.1 + 2
    # A limited job waits in its queue: popped once, never pushed back, never re-attempted.
    assert command_calls(r, "rpop") == len(ids)
    assert command_calls(r, "lpush") == 0
    assert all(record(r, i)["attempts"] == 1 for i in ids)
    assert leased_peak <= 6, "jobs were taken out of the queue ahead of their turn"


async def test_job_name_rate_held_across_three_workers(
    pool: Pool, client: Client, r: redis.Redis, cli_env: dict[str, str]
) -> None:
    done = run_cli(cli_env, "limits", "set", "--job-name", "send_sms", "--rate", "10/s")
    assert done.returncode == 0 and done.stdout.strip() == "job send_sms: rate 10/s", done
    sms = client.submit_many("send_sms", list(range(60)))
    others = client.submit_many("noop", list(range(20)))
    r.config_resetstat()
    times = StartTimes()
    for _ in range(3):
        await pool.start(times.registry("send_sms", "noop"), concurrency=5)
    await eventually(lambda: times.count("noop") == len(others), what="unlimited jobs")
    # The unlimited jobs behind the limited ones are not held up by them.
    assert times.count("send_sms") < len(sms)
    await eventually(lambda: times.count("send_sms") == len(sms), timeout=15, what="60 rate-limited jobs")
    rate = rate_of(times.starts["send_sms"])
    burst = busiest_window(times.starts["send_sms"])
    await eventually(lambda: r.zcard("bananas:leases") == 0, what="last acks")
    pushes = command_calls(r, "lpush")
    print(f"\nlimits set --job-name send_sms --rate 10/s, 3 workers, 60 jobs: measured {rate:.2f}/s; "
          f"busiest second {burst}; moves to the parked list {pushes}")  # fmt: skip
    within_five_percent(rate, 10)
    assert burst <= 10 * 1.1 + 2
    assert pushes == len(sms), "each rate-limited job is moved to its parked list exactly once"
    for job_id in sms:
        rec = record(r, job_id)
        assert rec["attempts"] == 1 and rec["status"] == "completed"
        assert "rate limited" in rec["parked"]["reason"]
    assert all("parked" not in record(r, i) for i in others)


def test_limits_cli_set_list_clear(redis_url: str, r: redis.Redis) -> None:
    def ok(*args: str) -> str:
        done = invoke(redis_url, "limits", *args)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        return done.stdout

    assert ok("list") == "no limits set\n"
    assert ok("set", "gpu", "--concurrency", "8") == "routing key gpu: concurrency 8\n"
    assert ok("set", "email", "--rate", "100/m") == "routing key email: rate 100/m\n"
    assert ok("set", "--job-name", "send_sms", "--rate", "10/s") == "job send_sms: rate 10/s\n"
    assert ok("list").splitlines() == [
        "routing key email: rate 100/60s",
        "routing key gpu: concurrency 8 (in flight 0)",
        "job send_sms: rate 10/1s",
    ]
    data = json.loads(ok("list", "--json"))
    assert data["routes"]["gpu"] == {"concurrency": 8, "rate": None, "in_flight": 0}
    assert data["routes"]["email"]["rate"] == "100/60s"
    assert data["jobs"] == {"send_sms": {"rate": "10/1s"}}
    assert ok("clear", "gpu", "--concurrency") == "routing key gpu: 1 limit(s) cleared\n"
    assert ok("clear", "--job-name", "send_sms") == "job send_sms: rate limit cleared\n"
    assert ok("clear", "--job-name", "send_sms") == "job send_sms: had no limit\n"
    assert ok("list") == "routing key email: rate 100/60s\n"
    assert ok("clear", "--all") == "all limits cleared\n"
    assert ok("list") == "no limits set\n"
    assert r.exists("bananas:limits") == 0


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["set", "bad key!", "--concurrency", "2"], "bad key!"),
        (["set", "a:b", "--rate", "1/s"], "a:b"),
        (["set", "email", "--rate", "10/x"], "10/x"),
        (["set", "email", "--rate", "ten/s"], "ten/s"),
        (["set", "email", "--rate", "0/s"], "0/s"),
        (["set", "email", "--rate", "5/0s"], "5/0s"),
        (["set", "gpu", "--concurrency", "0"], "--concurrency"),
        (["set", "gpu", "--concurrency", "-3"], "--concurrency"),
        (["set", "gpu", "--concurrency", "abc"], "--concurrency"),
        (["set", "gpu", "--concurrency", "2.5"], "--concurrency"),
        (["set", "gpu"], "--concurrency"),
        (["set", "--job-name", "send_sms"], "--rate"),
        (["set", "--job-name", "send_sms", "--concurrency", "2"], "--concurrency"),
        (["set", "--job-name", "", "--rate", "1/s"], "job-name"),
        (["set"], "ROUTING_KEY"),
        (["set", "gpu", "--job-name", "x", "--rate", "1/s"], "ROUTING_KEY"),
        (["clear"], "ROUTING_KEY"),
        (["clear", "bad key!"], "bad key!"),
    ],
)
def test_limits_cli_bad_input(redis_url: str, r: redis.Redis, args: list[str], mentions: str) -> None:
    line = one_line_error(invoke(redis_url, "limits", *args))
    assert mentions in line, line
    assert r.exists("bananas:limits") == 0, "nothing is written on bad input"


def test_limits_cli_bad_input_from_the_console_script(cli_env: dict[str, str], r: redis.Redis) -> None:
    """The same one-line errors from the installed ``bananas`` command."""
    assert "10/x" in one_line_error(run_cli(cli_env, "limits", "set", "email", "--rate", "10/x"))
    assert "--concurrency" in one_line_error(run_cli(cli_env, "limits", "set", "gpu", "--concurrency", "0"))
    assert r.exists("bananas:limits") == 0
