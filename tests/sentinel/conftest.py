"""Fixtures of the Sentinel suite: a fresh master + replica + 3 sentinels per test module."""

from __future__ import annotations

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
