"""Issue 9 item 4: processes agree on the server's time whatever their host clocks say."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import redis
import redis.asyncio as aioredis

from bananas import AsyncClient, Client
from bananas.core.clock import ServerClock
from bananas.redis import clock_sync, keys

TRUE_TIME = time.time


class SkewedClock:
    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return TRUE_TIME() + self.offset


@contextlib.contextmanager
def host_clock_skew(seconds: float) -> Iterator[None]:
    """This process's wall clock (``time.time``) off by ``seconds`` inside the block."""
    time.time = lambda: TRUE_TIME() + seconds
    try:
        yield
    finally:
        time.time = TRUE_TIME


def server_now(r: redis.Redis) -> float:
    seconds, micros = r.time()
    return seconds + micros / 1e6


def test_a_client_on_a_host_five_minutes_behind_schedules_by_the_server(redis_url: str, r: redis.Redis) -> None:
    for skew in (-300.0, 300.0):
        with host_clock_skew(skew), Client(redis_url) as client:
            job_id = client.schedule_job("later", None, delay=40)
        due = r.zscore(keys.SCHEDULED, job_id)
        assert due is not None
        assert abs(due - (server_now(r) + 40)) < 2, f"host {skew:+.0f} s: due {due - server_now(r):+.1f} s from now"


async def test_async_client_on_a_skewed_host_schedules_by_the_server(redis_url: str, r: redis.Redis) -> None:
    with host_clock_skew(-120.0):
        async with AsyncClient(redis_url) as client:
            job_id = await client.schedule_job("later", None, delay=40)
    due = r.zscore(keys.SCHEDULED, job_id)
    assert due is not None and abs(due - (server_now(r) + 40)) < 2


async def test_server_clock_measures_the_offset_of_a_skewed_host(redis_url: str, r: redis.Redis) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        for skew in (-300.0, 60.0):
            clock = ServerClock(SkewedClock(skew))
            assert abs(clock.now() - server_now(r)) > 50  # not measured yet: the host's time
            await clock_sync.measure(client, clock)
            assert clock.round_trip is not None and clock.round_trip < 1
            assert abs(clock.now() - server_now(r)) < 0.25
            assert abs(clock.offset + skew) < 0.25
            assert not clock.needs_measuring()
    finally:
        await client.aclose()


def test_blocking_measure_and_refresh_interval(redis_url: str, r: redis.Redis) -> None:
    clock = ServerClock(SkewedClock(90.0), refresh_interval=0.2)
    assert clock.needs_measuring()
    clock_sync.measure_blocking_if_due(r, clock)
    assert abs(clock.now() - server_now(r)) < 0.25
    assert not clock.needs_measuring()
    time.sleep(0.25)
    assert clock.needs_measuring()


async def test_a_refused_time_leaves_the_host_clock(redis_url: str, r: redis.Redis) -> None:
    """An ACL user without TIME: the host's clock stays in use, and the next try waits."""
    r.acl_setuser("no-time", enabled=True, passwords=["+pw"], commands=["+@all", "-time"], keys=["*"], channels=["*"])
    try:
        client = aioredis.Redis.from_url(redis_url.replace("redis://", "redis://no-time:pw@"))
        clock = ServerClock(SkewedClock(30.0))
        await clock_sync.measure(client, clock)
        assert clock.offset == 0.0 and clock.round_trip is None
        assert not clock.needs_measuring()
        await client.aclose()
    finally:
        r.acl_deluser("no-time")
        await asyncio.sleep(0)
