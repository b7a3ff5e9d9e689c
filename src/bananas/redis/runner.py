"""Run ``Call``s with EVALSHA, on a sync or an async redis-py client.

A server that restarted has forgotten its scripts: on NOSCRIPT the runner loads every
script and runs the call again. That is safe because a script that answered NOSCRIPT
did not run at all.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
import redis.exceptions
from redis.exceptions import NoScriptError, ResponseError

from bananas.redis.scripts import SCRIPTS, Call, compat_sources, needs_compat


def pack(commands: Sequence[tuple[object, ...]]) -> bytes:
    """RESP-encode commands with hiredis' C packer (about ten times faster than redis-py's)."""
    try:
        return b"".join(hiredis.pack_command(command) for command in commands)  # type: ignore[arg-type]
    except UnicodeEncodeError:
        # An id from a foreign client that is not UTF-8 (see connection.py): encode it back
        # to its original bytes first.
        return b"".join(
            hiredis.pack_command(tuple(_encode(arg) for arg in command))  # type: ignore[arg-type]
            for command in commands
        )


def _encode(arg: object) -> object:
    return arg.encode("utf-8", "surrogateescape") if isinstance(arg, str) else arg


def _is_noscript(value: object) -> bool:
    return isinstance(value, NoScriptError) or (isinstance(value, ResponseError) and str(value).startswith("NOSCRIPT"))


class SyncRunner:
    """Runs script calls for the blocking client. One connection is kept for the common
    case of one thread submitting at a time, so a call skips the pool's checkout and
    return; a thread that finds it busy takes a pooled connection as usual."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._own: Any = None
        self._own_lock = threading.Lock()
        #: The server predates script flags: run the flag-less forms (see scripts.py).
        self.compat = False

    def close(self) -> None:
        with self._own_lock:
            if self._own is not None:
                conn, self._own = self._own, None
                self.client.connection_pool.release(conn)

    def load_scripts(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for script in SCRIPTS.values():
            pipe.script_load(script.source)
        if needs_compat(pipe.execute(raise_on_error=False)):
            pipe = self.client.pipeline(transaction=False)
            for source in compat_sources():
                pipe.script_load(source)
            pipe.execute()
            self.compat = True

    def _send(self, command: tuple[object, ...]) -> Any:
        """One command straight through the connection layer (see ``AsyncRunner``)."""
        if self._own_lock.acquire(blocking=False):
            try:
                return self._send_on_own(command)
            finally:
                self._own_lock.release()
        return self._send_pooled(command)

    def _send_on_own(self, command: tuple[object, ...]) -> Any:
        pool = self.client.connection_pool
        for attempt in (1, 2):
            if self._own is None:
                self._own = pool.get_connection()
            conn = self._own
            try:
                conn.send_packed_command([pack([command])])
                return conn.read_response()
            except ResponseError:
                raise
            except BaseException as exc:
                # A connection in an unknown state: close it and give it back.
                self._own = None
                conn.disconnect()
                pool.release(conn)
                retry = isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OSError)
                if not retry or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_pooled(self, command: tuple[object, ...]) -> Any:
        pool = self.client.connection_pool
        for attempt in (1, 2):
            conn = pool.get_connection()
            try:
                conn.send_packed_command([pack([command])])  # type: ignore[no-untyped-call]
                return conn.read_response()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                conn.disconnect()  # type: ignore[no-untyped-call]
                if attempt == 2:
                    raise
            except ResponseError:
                raise
            except BaseException:
                conn.disconnect()  # type: ignore[no-untyped-call]
                raise
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, call: Call) -> Any:
        try:
            return self._send(("EVALSHA", *call.evalsha_args(self.compat)))
        except NoScriptError:
            self.load_scripts()
            return self._send(("EVALSHA", *call.evalsha_args(self.compat)))

    def run_many(self, calls: Sequence[Call], *, transaction: bool = False) -> list[Any]:
        """All calls in one round trip (all-or-nothing with ``transaction``). Errors are
        returned in place, not raised, so one failed call does not hide the others."""
        for _attempt in (1, 2):
            pipe = self.client.pipeline(transaction=transaction)
            for call in calls:
                pipe.evalsha(*call.evalsha_args(self.compat))  # type: ignore[arg-type]
            try:
                results = pipe.execute(raise_on_error=False)
            except NoScriptError:
                self.load_scripts()
                continue
            if any(_is_noscript(r) for r in results):
                self.load_scripts()
                if transaction:
                    continue
                retry_idx = [i for i, r in enumerate(results) if _is_noscript(r)]
                pipe = self.client.pipeline(transaction=False)
                for i in retry_idx:
                    pipe.evalsha(*calls[i].evalsha_args(self.compat))  # type: ignore[arg-type]
                again = pipe.execute(raise_on_error=False)
                for i, value in zip(retry_idx, again, strict=True):
                    results[i] = value
            return list(results)
        raise RuntimeError("scripts could not be loaded")  # pragma: no cover


def raise_first_error(results: Sequence[Any]) -> list[Any]:
    for value in results:
        if isinstance(value, Exception):
            raise value
    return list(results)


class AsyncRunner:
    """Runs script calls on one connection at a time, straight through redis-py's
    connection layer (packing and hiredis parsing), without its command and pipeline
    wrappers: on the worker's hot path those cost more than the round trip itself.
    TLS, AUTH and reconnects are still the connection's own.

    With ``dedicated``, the runner keeps one connection for itself instead of taking one
    from the pool per call: for a loop that makes one call at a time (the fetcher, the
    writer) that saves the pool's locking on every round trip."""

    def __init__(self, client: aioredis.Redis, *, dedicated: bool = False) -> None:
        self.client = client
        self._dedicated = dedicated
        self._conn: Any = None
        self._lock = asyncio.Lock()
        #: The server predates script flags: run the flag-less forms (see scripts.py).
        self.compat = False

    async def close(self) -> None:
        """Give a dedicated connection back to the pool."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self.client.connection_pool.release(conn)

    async def load_scripts(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for script in SCRIPTS.values():
            pipe.script_load(script.source)
        if needs_compat(await pipe.execute(raise_on_error=False)):
            pipe = self.client.pipeline(transaction=False)
            for source in compat_sources():
                pipe.script_load(source)
            await pipe.execute()
            self.compat = True

    async def send(self, commands: Sequence[tuple[object, ...]], *, packed: bytes | None = None) -> list[Any]:
        """Raw commands in one round trip; error replies are returned in place.
        ``packed``: the commands already RESP-encoded (a request sent often, encoded once)."""
        if not self._dedicated:
            return await self._send(commands, packed)
        async with self._lock:
            return await self._send(commands, packed)

    async def _send(self, commands: Sequence[tuple[object, ...]], packed: bytes | None = None) -> list[Any]:
        pool = self.client.connection_pool
        for attempt in (1, 2):
            if self._conn is not None:
                conn = self._conn
            else:
                conn = await pool.get_connection()  # type: ignore[no-untyped-call]
                if self._dedicated:
                    self._conn = conn
            try:
                await conn.send_packed_command([packed if packed is not None else pack(commands)])
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                await self._drop(conn)
                # One immediate reconnect; longer outages are paced by the caller's backoff.
                # Repeating is safe: every script checks state (SET NX, lease tokens).
                if attempt == 2:
                    raise
            except BaseException:
                await self._drop(conn)
                raise
            else:
                # Not in the ``try``: a ``return`` there would skip this ``else`` and leak
                # the connection (the pool runs dry after MAX_CONNECTIONS calls).
                if not self._dedicated:
                    await pool.release(conn)
                return replies
        raise AssertionError("unreachable")  # pragma: no cover

    async def _drop(self, conn: Any) -> None:
        """A connection in an unknown state: close it and hand it back to the pool."""
        await conn.disconnect()
        if self._conn is conn:
            self._conn = None
        await self.client.connection_pool.release(conn)

    async def run(self, call: Call) -> Any:
        (reply,) = await self.run_many([call])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def run_many(self, calls: Sequence[Call], *, transaction: bool = False) -> list[Any]:
        """All calls in one round trip (all-or-nothing with ``transaction``). Errors are
        returned in place, not raised, so one failed call does not hide the others."""
        if transaction and len(calls) > 1:
            return await self._run_transaction(calls)
        replies = await self.send([("EVALSHA", *call.evalsha_args(self.compat)) for call in calls])
        missing = [i for i, r in enumerate(replies) if _is_noscript(r)]
        if missing:
            await self.load_scripts()
            again = await self.send([("EVALSHA", *calls[i].evalsha_args(self.compat)) for i in missing])
            for i, value in zip(missing, again, strict=True):
                replies[i] = value
        return replies

    async def _run_transaction(self, calls: Sequence[Call]) -> list[Any]:
        for _attempt in (1, 2):
            pipe = self.client.pipeline(transaction=True)
            for call in calls:
                pipe.evalsha(*call.evalsha_args(self.compat))  # type: ignore[arg-type]
            try:
                results = await pipe.execute(raise_on_error=False)
            except NoScriptError:
                await self.load_scripts()
                continue
            if any(_is_noscript(r) for r in results):
                await self.load_scripts()
                continue
            return list(results)
        raise RuntimeError("scripts could not be loaded")  # pragma: no cover
