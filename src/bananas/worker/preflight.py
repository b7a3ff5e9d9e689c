"""What a worker checks before it takes a job: that Redis answers, accepts its
credentials and commands, and will not evict its keys.

At start a problem that will not mend itself (wrong password, missing ACL permission,
an ``allkeys-*`` eviction policy) stops the worker with one line (``StartupError``);
an unreachable server is retried for ``START_TIMEOUT`` seconds first. Once the worker
runs, a lost connection is retried by each loop as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from bananas.errors import StartupError
from bananas.redis import connection, eviction, keys
from bananas.redis.backoff import Backoff, is_connection_error, is_out_of_memory
from bananas.redis.broker import Broker
from bananas.redis.connection import mask_secrets, mask_url

T = TypeVar("T")
log = logging.getLogger("bananas.worker")

#: Seconds a starting worker keeps trying to reach Redis before it gives up (exit 3).
START_TIMEOUT = 10.0

_CREDENTIALS = (redis.exceptions.AuthenticationError, redis.exceptions.AuthenticationWrongNumberOfArgsError)
_PERMISSION = (redis.exceptions.NoPermissionError, redis.exceptions.AuthorizationError)


def credential_problem(exc: BaseException) -> str | None:
    """'wrong password' / 'missing permission' for errors retrying cannot mend, else None."""
    text = str(exc)
    if isinstance(exc, _CREDENTIALS) or text.startswith(("WRONGPASS", "NOAUTH")):
        return "Redis refused the credentials (wrong user name or password in the Redis URL)"
    if isinstance(exc, _PERMISSION) or text.startswith("NOPERM"):
        return "the Redis user lacks a permission Bananas needs (ACL)"
    return None


async def preflight(
    client: aioredis.Redis,
    url: str,
    *,
    first_writes: Callable[[], Awaitable[object]],
    allow_eviction: bool,
    stopping: asyncio.Event,
    timeout: float = START_TIMEOUT,
) -> bool:
    """Check the server; False when a stop was asked meanwhile. ``first_writes`` runs
    the worker's own first commands (script load, heartbeat), so a missing permission
    shows now, not as a loop of errors later."""
    deadline = time.monotonic() + timeout
    backoff = Backoff(base=0.1, cap=2.0)
    while True:
        if stopping.is_set():
            return False
        try:
            await _bounded(client.ping(), deadline)
            policy = await _bounded(eviction.read_policy_async(client), deadline)
            try:
                await _bounded(first_writes(), deadline)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                # Full, not broken: the worker starts and waits for memory as a running
                # one does (docs/RELIABILITY.md, "Redis out of memory").
                log.warning("Redis is out of memory at start; the worker waits for memory: %s", exc)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            problem = credential_problem(exc)
            where = mask_url(url)
            if problem is not None:
                raise StartupError(f"{problem} at {where}: {mask_secrets(str(exc), url)}") from None
            if not (is_connection_error(exc) or isinstance(exc, TimeoutError)):
                raise
            if time.monotonic() + 0.1 >= deadline:
                reason = mask_secrets(str(exc), url) or type(exc).__name__
                raise StartupError(f"cannot reach Redis at {where} after {timeout:g}s: {reason}") from None
            log.warning("Redis at %s not reachable yet, retrying: %s", where, exc)
            await _sleep_or_stop(stopping, min(backoff.next_delay(), max(0.0, deadline - time.monotonic())))
    level = eviction.risk(policy)
    if level is eviction.EvictionRisk.ANY and not allow_eviction:
        raise StartupError(eviction.describe(policy))
    if level is not eviction.EvictionRisk.NONE:
        log.warning("%s", eviction.describe(policy))
    return True


async def check_server(url: str, *, allow_eviction: bool) -> None:
    """``preflight`` on its own connection, for a supervisor before it starts children."""
    client = connection.async_client(url)
    broker = Broker(client, layout=keys.layout_for_url(url))
    try:
        await preflight(
            client, url, first_writes=broker.load_scripts, allow_eviction=allow_eviction, stopping=asyncio.Event()
        )
    finally:
        with contextlib.suppress(Exception):
            await broker.close()
        await client.aclose()


async def _bounded(step: Awaitable[T], deadline: float) -> T:
    remaining = deadline - time.monotonic()
    return await asyncio.wait_for(step, max(0.1, remaining))


async def _sleep_or_stop(stopping: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), delay)
