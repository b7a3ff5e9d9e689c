"""Fixtures of the Sentinel suite: a fresh master + replica + 3 sentinels per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faults.harness import SUMMARIES

from sentinel.group import SentinelGroup


@pytest.fixture(scope="module")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The failover figures, like the fault suite's (which prints them itself when it runs)."""
    plugins = terminalreporter.config.pluginmanager.get_plugins()
    if any(getattr(p, "__name__", "").endswith("faults.conftest") for p in plugins):
        return
    lines = [line for line in SUMMARIES if line.startswith("scenario=sentinel")]
    if lines:
        terminalreporter.section("sentinel suite summary")
        for line in lines:
            terminalreporter.write_line(line)
