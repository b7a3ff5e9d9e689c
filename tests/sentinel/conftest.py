"""Fixtures of the Sentinel suite: a fresh master + replica + 3 sentinels per test module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sentinel.group import SentinelGroup


@pytest.fixture(scope="module")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Immune to the caller's environment: clients read REDIS_URL and BANANAS_* themselves."""
    for name in list(os.environ):
        if name == "REDIS_URL" or name.startswith(("BANANAS_", "WORKER_", "JOB_")):
            monkeypatch.delenv(name)
