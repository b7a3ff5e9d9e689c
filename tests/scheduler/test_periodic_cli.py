"""``bananas scheduler`` and ``bananas schedules`` as users run them (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import periodic_app
import pytest
import redis
from click.testing import CliRunner
from periodic_support import FakeClock, local_ts, queued_jobs

from bananas.cli.main import cli
from bananas.redis import keys
from bananas.scheduler.service import Scheduler

HERE = Path(__file__).resolve().parent


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    out = dict(cli_env)
    out["PYTHONPATH"] = os.pathsep.join([str(HERE), out["PYTHONPATH"]])
    return out


def bananas(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the real command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "bananas", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def schedules_cmd(redis_url: str) -> Callable[..., Ran]:
    """``bananas schedules ...`` in-process (read-only, so no subprocess is needed)."""

    def run(*args: str) -> Ran:
        result = CliRunner().invoke(cli, ["schedules", *args], env={"REDIS_URL": redis_url, "BANANAS_SCHEDULES": ""})
        return Ran(result.exit_code, result.stdout, result.stderr)

    return run


async def run_nightly_for_two_days(redis_url: str) -> None:
    """State as a scheduler would leave it: 'nightly-cleanup' ran twice; 'report' never started."""
    nightly = next(s for s in periodic_app.catalog.schedules if s.id == "nightly-cleanup")
    start = local_ts("Europe/Berlin", 2026, 3, 28, 0, 0)
    clock = FakeClock(start)
    scheduler = Scheduler([nightly], redis_url=redis_url, clock=clock, promote=False)
    await scheduler.start()
    for hour in range(1, 48):
        clock.set(start + hour * 3600)
        await scheduler.run_pending()
    await scheduler.aclose()


async def test_schedules_lists_state_from_redis(
    schedules_cmd: Callable[..., Ran], redis_url: str, r: redis.Redis
) -> None:
    empty = schedules_cmd()
    assert empty.returncode == 0 and "no schedules" in empty.stdout

    await run_nightly_for_two_days(redis_url)
    listing = schedules_cmd()
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split()[:6] == ["ID", "JOB", "CRON", "TIME", "ZONE", "QUEUE"]
    assert row.startswith("nightly-cleanup  nightly  30 2 * * *  Europe/Berlin  default/normal")
    # last run: the spring-forward day's 02:30, run at 03:00 CEST; next: the day after
    assert "2026-03-29 03:00:00+02:00" in row and "2026-03-30 02:30:00+02:00" in row
    assert row.split()[-3:] == ["2", "ok", "-"]

    as_json = json.loads(schedules_cmd("--json").stdout)
    assert [s["id"] for s in as_json] == ["nightly-cleanup"]
    assert as_json[0]["run_count"] == 2 and as_json[0]["status"] == "ok"
    assert as_json[0]["last_run"] == "2026-03-29T03:00:00+02:00"
    assert as_json[0]["last_job_id"] == queued_jobs(r)[-1].id


async def test_schedules_with_app_shows_unstarted_and_undefined(
    schedules_cmd: Callable[..., Ran], redis_url: str, r: redis.Redis
) -> None:
    await run_nightly_for_two_days(redis_url)
    r.hset(keys.schedule("retired"), mapping={"cursor": "1", "cron": "@daily", "job": "old"})
    r.zadd(keys.SCHEDULES, {"retired": 2e9})
    listing = schedules_cmd("periodic_app:catalog", "--json")
    assert listing.returncode == 0, listing.stderr
    status = {s["id"]: s["status"] for s in json.loads(listing.stdout)}
    assert status == {"nightly-cleanup": "ok", "retired": "not defined", "report": "not started"}
    table = schedules_cmd("periodic_app:catalog").stdout
    report_row = next(line for line in table.splitlines() if line.startswith("report"))
    assert "@hourly" in report_row and "reports/low" in report_row and "never" in report_row

    forgot = schedules_cmd("--forget", "retired")
    assert forgot.returncode == 0 and "forgot schedule 'retired'" in forgot.stdout
    assert not r.exists(keys.schedule("retired")) and r.zscore(keys.SCHEDULES, "retired") is None
    again = schedules_cmd("--forget", "retired")
    assert again.returncode == 1 and "no stored state" in again.stderr


def test_schedules_shows_last_error(schedules_cmd: Callable[..., Ran], r: redis.Redis) -> None:
    r.hset(
        keys.schedule("sync"),
        mapping={"cursor": "100", "cron": "* * * * *", "job": "sync", "routing_key": "default",
                 "priority": "normal", "run_count": "0", "last_error": "ResponseError: WRONGTYPE",
                 "last_error_at": "150"},
    )  # fmt: skip
    r.zadd(keys.SCHEDULES, {"sync": 160})
    row = schedules_cmd().stdout.splitlines()[1]
    assert row.split()[-3:] == ["error", "ResponseError:", "WRONGTYPE"]


def test_invalid_schedule_file_is_a_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[schedules.nightly]\ncron = "0 3 * * *"\njob = "cleanup"\ntimezone = "Europe/Berln"\n')
    result = bananas(env, "scheduler", "--schedules", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"bananas: error: --schedules {bad}: schedule 'nightly': unknown time zone 'Europe/Berln' "
        "(expected an IANA name such as 'Europe/Berlin' or 'UTC')"
    )
    from_env = bananas({**env, "BANANAS_SCHEDULES": str(bad)}, "scheduler")
    assert from_env.returncode == 2 and "BANANAS_SCHEDULES" in from_env.stderr and "'nightly'" in from_env.stderr
    nothing = bananas(env, "scheduler", "--no-promote")
    assert nothing.returncode == 2 and "nothing to do" in nothing.stderr


def test_scheduler_runs_a_schedule_file_and_stops_on_sigint(
    env: dict[str, str], tmp_path: Path, r: redis.Redis
) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(
        '[schedules.pulse]\ncron = "* * * * * *"\njob = "pulse"\nrouting_key = "pulses"\npriority = "low"\n'
        'payload = { from = "toml" }\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bananas", "scheduler", "--schedules", str(path)],
        env={**env, "BANANAS_LOG_LEVEL": "INFO"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and r.llen(keys.route_queue("pulses", "low")) < 2:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    jobs = queued_jobs(r, "pulses", "low")
    assert len(jobs) >= 2
    assert {(j.name, j.routing_key, j.priority.value) for j in jobs} == {("pulse", "pulses", "low")}
    assert jobs[0].payload == {"from": "toml"}
    assert "scheduler" in err and "stopped" in err and "Traceback" not in err
