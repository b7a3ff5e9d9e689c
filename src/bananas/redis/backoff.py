"""Reconnect pacing for the worker's loops: no loop spins while Redis is away."""

from __future__ import annotations

import asyncio
import logging
import random

import redis.exceptions

_CONNECTION_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    # Redis Cluster while a master fails over or a slot moves: passes on its own.
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.AskError,  # and MovedError: a slot on its way to another master
)


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    if isinstance(exc, redis.exceptions.ResponseError):
        return str(exc).startswith("LOADING")
    # The cluster client's "no startup node answers" is not a ConnectionError.
    return isinstance(exc, redis.exceptions.RedisClusterException) and "cannot be connected" in str(exc)


def is_out_of_memory(exc: BaseException) -> bool:
    """Redis refused a write because it reached ``maxmemory`` (policy ``noeviction``)."""
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or (
        isinstance(exc, redis.exceptions.ResponseError) and "used memory > 'maxmemory'" in str(exc)
    )


def loop_log_level(exc: BaseException) -> int:
    """How loudly a maintenance loop logs a failed turn: an out-of-memory refusal is said
    once by the worker's ``MemoryPressure`` (so DEBUG here), a lost connection is a
    WARNING (retried), anything else an ERROR."""
    if is_out_of_memory(exc):
        return logging.DEBUG
    return logging.WARNING if is_connection_error(exc) else logging.ERROR


class Backoff:
    """Jittered exponential delays from ``base`` to ``cap`` seconds."""

    def __init__(self, base: float = 0.05, cap: float = 5.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.failures = 0
