"""Fixtures for tests/selection: a client, in-process workers, a clean server stat."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from selection_support import Pool

from bananas import Client


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    with Client(redis_url) as c:
        yield c


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[Pool]:
    workers = Pool(redis_url)
    try:
        yield workers
    finally:
        await workers.stop_all()


@pytest.fixture
def stats(r: redis.Redis) -> redis.Redis:
    """``r`` with the server's command counters reset (see ``command_calls``)."""
    r.config_resetstat()
    return r
