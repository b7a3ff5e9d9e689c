"""Fixtures of the client-side Cluster tests: one 3-master cluster (no replicas: these
tests read and write, they kill nothing) per test module, started on free loopback
ports and stopped by PID (tests/cluster/group.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cluster.group import ClusterGroup

from bananas import Client


@pytest.fixture(scope="module")
def cluster_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    group = ClusterGroup(tmp_path_factory.mktemp("cluster-client"), replicas=False)
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def cluster(cluster_group: ClusterGroup) -> ClusterGroup:
    """The module's cluster, emptied before the test."""
    cluster_group.flushall()
    return cluster_group


@pytest.fixture
def client(cluster: ClusterGroup) -> Iterator[Client]:
    with Client(cluster.url) as c:
        yield c


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Immune to the caller's environment: clients read REDIS_URL and BANANAS_* themselves."""
    for name in list(os.environ):
        if name == "REDIS_URL" or name.startswith(("BANANAS_", "WORKER_", "JOB_")):
            monkeypatch.delenv(name)
