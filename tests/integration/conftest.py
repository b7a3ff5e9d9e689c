"""Fixtures for integration tests: clients, in-process workers, CLI subprocesses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from support import CliRunner, Workers

from bananas import Client


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    with Client(redis_url) as c:
        yield c


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[Workers]:
    """In-process workers; every one still running is stopped at teardown."""
    pool = Workers(redis_url)
    try:
        yield pool
    finally:
        await pool.stop_all()


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path, r: redis.Redis) -> Iterator[CliRunner]:
    """Runs ``bananas`` subprocesses; any still alive at teardown are killed (with their children)."""
    runner = CliRunner(cli_env, tmp_path, r)
    try:
        yield runner
    finally:
        runner.cleanup()
