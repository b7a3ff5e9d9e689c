"""Three ``bananas scheduler`` processes on one every-second schedule: each tick must be
enqueued exactly once, while schedulers are killed, stopped and started.

The run lasts $BANANAS_PERIODIC_SOAK_SECONDS (default 20, for CI). For the long run the
issue asks for, e.g. ten minutes::

    BANANAS_PERIODIC_SOAK_SECONDS=600 pytest tests/scheduler/test_periodic_exactly_once.py -s
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import IO

import pytest
import redis
from periodic_support import queued_jobs, state

from bananas.scheduler.definition import tick_job_id

HERE = Path(__file__).resolve().parent
SOAK_SECONDS = float(os.environ.get("BANANAS_PERIODIC_SOAK_SECONDS", "20"))
SCHEDULE_ID = "soak-every-second"
ENQUEUED = re.compile(r"schedule 'soak-every-second': enqueued tick for tick (\S+)")
LOST = re.compile(r"schedule 'soak-every-second': tick \S+ was already decided by another scheduler")


class Fleet:
    """``bananas scheduler`` processes, each logging to its own file."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.files: dict[str, IO[bytes]] = {}

    def start(self, name: str) -> None:
        self.files[name] = (self.log_dir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "bananas", "scheduler", "periodic_app:registry", "--log-level", "DEBUG"],
            env=self.env, stdout=self.files[name], stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self, name: str, sig: signal.Signals) -> int:
        proc = self.procs[name]
        proc.send_signal(sig)
        code = proc.wait(timeout=20)
        self.files[name].close()
        return code

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            self.files[name].close()


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(SOAK_SECONDS + 120)
def test_three_schedulers_enqueue_every_tick_exactly_once(
    cli_env: dict[str, str], r: redis.Redis, tmp_path: Path
) -> None:
    env = {**cli_env, "PYTHONPATH": os.pathsep.join([str(HERE), cli_env["PYTHONPATH"]])}
    fleet = Fleet(env, tmp_path)
    try:
        for name in ("a", "b", "c"):
            fleet.start(name)
        assert wait_for(lambda: r.llen("bananas:route:soak:queue:high") > 0, 30), fleet.log("a")
        began = time.monotonic()

        # A third of the way in, one scheduler dies without warning and a new one joins.
        time.sleep(SOAK_SECONDS / 3)
        fleet.procs["a"].kill()
        fleet.procs["a"].wait(timeout=10)
        fleet.files["a"].close()
        fleet.start("d")
        # Two thirds in, another one is stopped gracefully.
        time.sleep(max(0.0, began + 2 * SOAK_SECONDS / 3 - time.monotonic()))
        assert fleet.stop("b", signal.SIGTERM) == 0, fleet.log("b")
        time.sleep(max(0.0, began + SOAK_SECONDS - time.monotonic()))
        elapsed = time.monotonic() - began
        assert fleet.stop("c", signal.SIGTERM) == 0, fleet.log("c")
        assert fleet.stop("d", signal.SIGINT) == 0, fleet.log("d")
    finally:
        fleet.kill_all()

    jobs = queued_jobs(r, "soak", "high")
    ticks = [int(datetime.fromisoformat(job.extra["schedule_tick"]).timestamp()) for job in jobs]
    counts = Counter(ticks)
    duplicates = {t: n for t, n in counts.items() if n > 1}
    assert not duplicates, f"ticks enqueued more than once: {duplicates}"
    expected = list(range(min(ticks), max(ticks) + 1))
    assert sorted(ticks) == expected, f"missing ticks: {sorted(set(expected) - set(ticks))}"
    assert len(ticks) >= int(elapsed) - 1
    assert all(job.id == tick_job_id(SCHEDULE_ID, tick) for job, tick in zip(jobs, ticks, strict=True))
    assert {(j.name, j.routing_key, j.priority.value, str(j.status)) for j in jobs} == {
        ("tick", "soak", "high", "pending")
    }
    saved = state(r, SCHEDULE_ID)
    assert int(saved["run_count"]) == len(jobs)
    assert int(saved["cursor"]) >= max(ticks)

    # Who enqueued what, from each process's log: the winners' lines add up to the jobs
    # (the killed process may have died between an enqueue and its log line), and the
    # schedulers really did compete for the same ticks.
    wins = {name: len(ENQUEUED.findall(fleet.log(name))) for name in "abcd"}
    lost = {name: len(LOST.findall(fleet.log(name))) for name in "abcd"}
    print(f"\n{len(jobs)} ticks in {elapsed:.1f}s; enqueued per scheduler {wins}; lost races {lost}")
    assert len(jobs) - 1 <= sum(wins.values()) <= len(jobs)
    assert sum(lost.values()) > 0
    for name in "bcd":
        assert "Traceback" not in fleet.log(name), fleet.log(name)
