"""Fixtures of the Cluster suite: a fresh 3 masters + 3 replicas cluster per test module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from faults.harness import SUMMARIES

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


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Immune to the caller's environment: clients read REDIS_URL and BANANAS_* themselves."""
    for name in list(os.environ):
        if name == "REDIS_URL" or name.startswith(("BANANAS_", "WORKER_", "JOB_")):
            monkeypatch.delenv(name)


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
