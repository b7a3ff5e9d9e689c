"""Fixtures for route table tests: a table file and the environment for CLI runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from route_table_samples import GOOD_TABLE

HERE = Path(__file__).resolve().parent


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(GOOD_TABLE)
    return path


@pytest.fixture
def routes_env(cli_env: dict[str, str]) -> dict[str, str]:
    """``cli_env`` with this folder importable, for ``callable = "routing_rules:..."``."""
    return {**cli_env, "PYTHONPATH": os.pathsep.join([str(HERE), cli_env["PYTHONPATH"]])}
