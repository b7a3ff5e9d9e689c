"""Measures a ``ServerClock``'s offset against the Redis server's ``TIME``.

A few round trips, the shortest kept (its error is at most half of it). A server that
refuses ``TIME`` (an ACL without it) leaves the host's time in use, with one warning.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
import redis.asyncio as aioredis

from bananas.core.clock import ServerClock

log = logging.getLogger("bananas.clock")

#: Round trips per measurement.
SAMPLES = 3


def _server_seconds(reply: Any) -> float:
    seconds, micros = reply
    return int(seconds) + int(micros) / 1_000_000


def _refused(clock: ServerClock, exc: Exception) -> None:
    if clock.round_trip is None and clock.measured_at is None:
        log.warning("cannot read the Redis server's TIME (%s); using this host's clock", exc)
    clock.failed()


async def measure(client: aioredis.Redis, clock: ServerClock) -> None:
    """Measure the offset now. Connection errors propagate; a refused TIME does not."""
    samples = []
    try:
        for _ in range(SAMPLES):
            sent = clock.host.now()
            reply = await client.time()
            samples.append((sent, _server_seconds(reply), clock.host.now()))
    except redis.exceptions.ResponseError as exc:
        _refused(clock, exc)
        return
    clock.record(samples)


async def measure_if_due(client: aioredis.Redis, clock: ServerClock) -> None:
    if clock.needs_measuring():
        await measure(client, clock)


def measure_blocking(client: redis.Redis, clock: ServerClock) -> None:
    """``measure`` for the blocking client."""
    samples = []
    try:
        for _ in range(SAMPLES):
            sent = clock.host.now()
            reply = client.time()
            samples.append((sent, _server_seconds(reply), clock.host.now()))
    except redis.exceptions.ResponseError as exc:
        _refused(clock, exc)
        return
    clock.record(samples)


def measure_blocking_if_due(client: redis.Redis, clock: ServerClock) -> None:
    if clock.needs_measuring():
        measure_blocking(client, clock)


async def keep_measured(client: aioredis.Redis, clock: ServerClock) -> None:
    """Measure again every ``clock.refresh_interval`` seconds, forever (a helper task)."""
    while True:
        await asyncio.sleep(clock.refresh_interval)
        try:
            await measure(client, clock)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("measuring the Redis server's time failed, keeping the last offset: %s", exc)
            clock.failed()
