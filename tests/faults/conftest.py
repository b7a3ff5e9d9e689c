"""Fixtures of the fault suite. Every worker subprocess a scenario starts is killed (with
its whole process group) at teardown, pass or fail."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import redis

from bananas import Client
from faults.harness import SOAK, SUMMARIES, Fleet


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    """The instrument: where handlers record their runs (the session server, flushed)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fleet(request: pytest.FixtureRequest, cli_env: dict[str, str], redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    pool = Fleet(cli_env, redis_url, tmp_path)
    try:
        yield pool
    finally:
        pool.cleanup()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for proc in pool.procs:  # shown with the failure, as captured teardown output
                tail = proc.log_path.read_text(errors="replace")[-3000:]
                print(f"----- {proc.name} (pid {proc.pid}) log tail -----\n{tail}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    with Client(redis_url) as c:
        yield c


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SUMMARIES:
        return
    terminalreporter.section(f"fault suite summary ({'soak' if SOAK else 'ci'} mode)")
    for line in SUMMARIES:
        terminalreporter.write_line(line)
    target = os.environ.get("BANANAS_FAULTS_REPORT")
    if target:
        Path(target).write_text("\n".join(SUMMARIES) + "\n")
