"""Fixtures of the Cluster suite: a fresh 3 masters + 3 replicas cluster per test module."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest
from faults.harness import SUMMARIES
from integration.support import Workers, bananas_argv

from bananas import Client
from cluster.group import ClusterGroup


@pytest.fixture(scope="module")
def cluster_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    group = ClusterGroup(tmp_path_factory.mktemp("cluster"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def cluster(cluster_group: ClusterGroup) -> ClusterGroup:
    """The module's cluster, emptied (FLUSHALL on every master) before the test."""
    cluster_group.flushall()
    return cluster_group


@pytest.fixture
def client(cluster: ClusterGroup) -> Iterator[Client]:
    with Client(cluster.url) as c:
        yield c


@pytest.fixture
async def workers(cluster: ClusterGroup) -> AsyncIterator[Workers]:
    """In-process workers on the cluster (tests/integration's helper); stopped at teardown."""
    pool = Workers(cluster.url)
    try:
        yield pool
    finally:
        await pool.stop_all()


@pytest.fixture
def cluster_env(cli_env: dict[str, str], cluster: ClusterGroup, redis_url: str) -> dict[str, str]:
    """Environment of ``bananas`` subprocesses: REDIS_URL is the cluster; handlers of
    ``cluster.app`` and ``faults.app`` record their runs in the session's standalone
    server (``TEST_STORE_URL``), never in the servers under test."""
    return {**cli_env, "REDIS_URL": cluster.url, "TEST_STORE_URL": redis_url}


def run_cli(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``bananas ARGS`` in a subprocess; returns once it exited."""
    return subprocess.run([*bananas_argv(), *args], env=env, capture_output=True, text=True, timeout=timeout)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The failover figures, like the fault suite's (which prints them itself when it runs)."""
    plugins = terminalreporter.config.pluginmanager.get_plugins()
    if any(getattr(p, "__name__", "").endswith("faults.conftest") for p in plugins):
        return
    lines = [line for line in SUMMARIES if line.startswith("scenario=cluster")]
    if lines:
        terminalreporter.section("cluster suite summary")
        for line in lines:
            terminalreporter.write_line(line)
