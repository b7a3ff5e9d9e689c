"""Fixtures of the client-side Cluster tests: one 3-master cluster (no replicas: these
tests read and write, they kill nothing) per test module, started on free loopback
ports and stopped by PID (tests/cluster/group.py)."""

from __future__ import annotations

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


