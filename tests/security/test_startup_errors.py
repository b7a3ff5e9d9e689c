"""Issue 9, item 8: a worker that cannot work on this Redis says so in one line and exits
3 at start (wrong password, ACL user without the needed permissions, unreachable server
after a bounded retry); a permission lost while it runs is reported once per interval,
not in a loop of tracebacks."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from security_helpers import cli_env, wait_until, worker_process

from bananas.cli.log_filters import CredentialErrorFilter
from bananas.embedded import free_port
from bananas.worker.preflight import START_TIMEOUT

PASSWORD = "Acl-Test-Pw-7"


@pytest.fixture
def acl_user(r: redis.Redis, redis_server: object) -> Iterator[tuple[str, str]]:
    """(url of user 'reader', url of user 'full') on the session server."""
    host, port = r.connection_pool.connection_kwargs["host"], r.connection_pool.connection_kwargs["port"]
    r.acl_setuser(
        "reader", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], channels=["*"],
        commands=["+@read", "+@connection", "-@scripting"],
    )  # fmt: skip
    r.acl_setuser("full", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], channels=["*"], commands=["+@all"])
    try:
        yield (f"redis://reader:{PASSWORD}@{host}:{port}/0", f"redis://full:{PASSWORD}@{host}:{port}/0")
    finally:
        r.acl_deluser("reader", "full")


def _one_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("bananas: error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output and PASSWORD not in output
    return errors[0]


def test_acl_user_without_permissions_stops_at_start(acl_user: tuple[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with worker_process(log, env=cli_env(acl_user[0])) as worker:
        assert worker.wait(30) == 3
    output = log.read_text()
    assert "lacks a permission Bananas needs" in _one_error(output)
    assert "consuming" not in output
    assert len(output.splitlines()) <= 3, output


def test_unreachable_redis_stops_after_a_bounded_retry(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    started = time.monotonic()
    with worker_process(log, env=cli_env(f"redis://127.0.0.1:{free_port()}/0")) as worker:
        assert worker.wait(START_TIMEOUT + 20) == 3
    took = time.monotonic() - started
    output = log.read_text()
    assert "cannot reach Redis at redis://127.0.0.1:" in _one_error(output)
    assert took >= START_TIMEOUT - 1, "it must retry before giving up"
    assert "consuming" not in output


def test_sigterm_while_waiting_for_redis_exits_0(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with worker_process(log, env=cli_env(f"redis://127.0.0.1:{free_port()}/0")) as worker:
        wait_until(lambda: "not reachable yet" in log.read_text(), what="the start-up retry")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 0


def test_permission_lost_while_running_is_reported_once_per_interval(
    acl_user: tuple[str, str], r: redis.Redis, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with worker_process(log, env=cli_env(acl_user[1])) as worker:
        wait_until(lambda: "consuming" in log.read_text(), what="the worker to start")
        r.acl_setuser("full", commands=["-@all", "+ping", "+auth", "+hello"])
        time.sleep(4)
        assert worker.poll() is None  # still running: the ACL may be fixed
        r.acl_setuser("full", commands=["+@all"])
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    output = log.read_text()
    reports = [line for line in output.splitlines() if "lacks a permission" in line]
    assert reports, output
    assert "Traceback" not in output
    # One line per kind of report (fetch, heartbeat, maintenance loops...), not a stream.
    assert len(reports) <= 10, "\n".join(reports)
    assert len({line.split(": ", 1)[1] for line in reports}) == len(reports), "the same report shown twice"


def test_filter_shows_a_report_again_after_the_interval() -> None:
    now = [0.0]
    flt = CredentialErrorFilter(interval=60, clock=lambda: now[0])
    exc = redis.exceptions.NoPermissionError("User x has no permissions to run the 'evalsha' command")

    def record() -> logging.LogRecord:
        return logging.LogRecord("bananas.worker", logging.ERROR, __file__, 1, "fetching jobs failed", None,
                                 (type(exc), exc, None))  # fmt: skip

    first = record()
    assert flt.filter(first) and first.exc_info is None and "lacks a permission" in first.getMessage()
    assert not flt.filter(record()) and not flt.filter(record())
    now[0] = 61.0
    again = record()
    assert flt.filter(again) and "2 more like it" in again.getMessage()
    other = logging.LogRecord(
        "bananas.worker", logging.WARNING, __file__, 1, "redis unavailable: %s", (OSError("x"),), None
    )
    assert flt.filter(other) and other.args is not None  # connection trouble: untouched


def test_supervisor_checks_once_before_starting_children(acl_user: tuple[str, str], tmp_path: Path) -> None:
    """``--processes N`` with a user that lacks permissions: one line and exit 3, not a
    loop of children restarted with growing delays."""
    log = tmp_path / "supervisor.log"
    with worker_process(log, "--processes", "2", env=cli_env(acl_user[0])) as supervisor:
        assert supervisor.wait(30) == 3
    output = log.read_text()
    assert "lacks a permission Bananas needs" in _one_error(output)
    assert "started worker process" not in output
