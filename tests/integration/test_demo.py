"""``bananas demo`` (issue 9, item 11): it starts from a clean state, checks what it
claims (exit 1 when a job did not run), and stops its server and workers on a signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bananas import Client
from bananas.demo_app import DEMO_RAN_KEY
from bananas.embedded import EmbeddedServer

pytestmark = pytest.mark.timeout(120)


def demo(env: dict[str, str], data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bananas", "demo", "--data-dir", str(data_dir), *args],
        env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found |= {child, *_descendants(child)}
    return found


def test_an_interrupted_demo_does_not_poison_the_next(cli_env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "demo"
    # What an interrupted demo leaves behind: thousands of queued jobs of the demo's
    # names, and a tally of runs, persisted in the data directory.
    with EmbeddedServer(data, appendonly=True) as leftover, Client(leftover.url) as client:
        for key in ("gpu", "email", "default"):
            client.submit_many("generate_report", [{"stale": i} for i in range(3000)], "high", routing_key=key)
        client.redis.hset(DEMO_RAN_KEY, mapping={f"stale-{i}": "gpu-pool" for i in range(50)})
    done = demo(cli_env, data, "--jobs", "12", "--timeout", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(not run)" not in done.stdout
    table = done.stdout.split("RAN ON", 1)[1].split("job statuses", 1)[0]
    assert sum(int(line.split()[-1]) for line in table.strip().splitlines()[1:]) == 12, "only this run's jobs count"
    assert "every job ran on a pool that listens on its routing key (12 of 12)" in done.stdout


def test_the_claim_is_checked(cli_env: dict[str, str], tmp_path: Path) -> None:
    """No time to run anything: the demo must say so and exit 1, not claim success."""
    done = demo(cli_env, tmp_path / "demo", "--jobs", "30", "--timeout", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "every job ran" not in done.stdout
    assert "NOT VERIFIED" in done.stderr and "did not run within 0s" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_server_and_workers(sig: signal.Signals, cli_env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bananas", "demo", "--data-dir", str(tmp_path / "demo"), "--timeout", "60",
         "--jobs", "100000"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "started general-pool" in line:
                break
        time.sleep(0.5)
        started = _descendants(proc.pid)
        assert len(started) >= 4, "a server and three workers"
        proc.send_signal(sig)
        assert proc.wait(40) == 130
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in started if _alive(p)], "the demo left processes running"
        assert proc.stderr is not None and f"interrupted by {sig.name}" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
