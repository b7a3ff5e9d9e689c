"""Run ``Call``s with EVALSHA, on a sync or an async redis-py client.

A server that restarted has forgotten its scripts: on NOSCRIPT the runner loads every
script and runs the call again. That is safe because a script that answered NOSCRIPT
did not run at all.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
import redis.exceptions
from redis.exceptions import NoScriptError, ResponseError

from bananas.errors import ConfigurationError, NotReplicatedError
from bananas.redis.scripts import SCRIPTS, Call, ScriptName, compat_sources, needs_compat

log = logging.getLogger("bananas.redis")

#: The writes that ``BANANAS_WAIT_REPLICAS`` makes wait for replicas: a job entering the
#: queue (submit, schedule) and a job leaving a lease for good or for later (ack, retry, bury).
DURABLE_SCRIPTS = frozenset({
    ScriptName.SUBMIT, ScriptName.SUBMIT_MANY, ScriptName.SCHEDULE,
    ScriptName.ACK, ScriptName.ACK_MANY, ScriptName.RETRY, ScriptName.BURY, ScriptName.BURY_SCHEDULED,
})  # fmt: skip

#: How long one ``WAIT`` may block for its replicas (milliseconds).
WAIT_TIMEOUT_MS = 1000


@dataclass(slots=True)
class Durability:
    """``WAIT replicas timeout_ms`` after each durable write, in the same round trip.

    ``strict``: raise ``NotReplicatedError`` when too few replicas confirmed (clients: the
    caller learns the job is on the master only); otherwise log a warning (workers: the
    write is done and the job is safe to go on with)."""

    replicas: int
    timeout_ms: int = WAIT_TIMEOUT_MS
    strict: bool = True
    #: When the last warning was logged (monotonic seconds): at most one per 10 s, as a
    #: master without a replica in sync would otherwise log one per write.
    _warned_at: float = field(default=-10.0, init=False, compare=False, repr=False)

    def wanted(self, calls: Sequence[Call]) -> bool:
        return self.replicas > 0 and any(call.script in DURABLE_SCRIPTS for call in calls)

    def command(self) -> tuple[object, ...]:
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, reply: object) -> None:
        if isinstance(reply, Exception):
            raise reply
        confirmed = int(reply)  # type: ignore[call-overload]
        if confirmed >= self.replicas:
            return
        error = NotReplicatedError(confirmed, self.replicas, self.timeout_ms)
        if self.strict:
            raise error
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.warning("%s", error)


#: The environment variable read where ``REDIS_URL`` is read (CLI, clients, workers).
WAIT_REPLICAS_ENV = "BANANAS_WAIT_REPLICAS"


def parse_wait_replicas(name: str, raw: object) -> int:
    """A replica count: a whole number >= 0 (0: do not wait). One-line error otherwise."""
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit():
        raise ConfigurationError(name, f"expected a whole number of replicas >= 0, got {raw!r}")
    return int(text)


def wait_replicas_from(value: int | None, env: Mapping[str, str]) -> int:
    """``value`` when given (the ``wait_replicas=`` argument), else ``$BANANAS_WAIT_REPLICAS``, else 0."""
    if value is not None:
        return parse_wait_replicas("wait_replicas", value)
    raw = env.get(WAIT_REPLICAS_ENV, "")
    return parse_wait_replicas(WAIT_REPLICAS_ENV, raw) if raw.strip() else 0


def durability(replicas: int, *, strict: bool = True) -> Durability | None:
    return Durability(replicas, strict=strict) if replicas > 0 else None


def _transaction(calls: Sequence[Call], compat: bool, durability: Durability) -> list[tuple[object, ...]]:
    """MULTI, the calls, EXEC and WAIT as raw commands (WAIT must follow on the same connection)."""
    return [("MULTI",), *(("EVALSHA", *call.evalsha_args(compat)) for call in calls), ("EXEC",), durability.command()]


def _exec_replies(replies: Sequence[Any], count: int) -> list[Any]:
    """The calls' replies out of a raw MULTI/EXEC/WAIT exchange (see ``_transaction``)."""
    executed = replies[-2]
    if isinstance(executed, Exception) or executed is None:
        queued_errors = [r for r in replies[1:-2] if isinstance(r, Exception)]
        error = queued_errors[0] if queued_errors else executed
        return [error if isinstance(error, Exception) else RuntimeError("transaction aborted")] * count
    return list(executed)


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

    def __new__(cls, client: redis.Redis, **options: Any) -> SyncRunner:
        # A cluster client gets the cluster runner (redis/cluster_runner.py); the
        # standalone path is not touched by it.
        if cls is SyncRunner and isinstance(client, redis.cluster.RedisCluster):
            from bananas.redis.cluster_runner import SyncClusterRunner

            return super().__new__(SyncClusterRunner)
        return super().__new__(cls)

    def __init__(self, client: redis.Redis, *, durability: Durability | None = None) -> None:
        self.client = client
        self.durability = durability
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
        (reply,) = self._send_all([command])
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _send_all(self, commands: Sequence[tuple[object, ...]]) -> list[Any]:
        """Commands in one round trip on one connection; error replies returned in place."""
        if self._own_lock.acquire(blocking=False):
            try:
                return self._send_on_own(commands)
            finally:
                self._own_lock.release()
        return self._send_pooled(commands)

    @staticmethod
    def _replies(conn: Any, count: int) -> list[Any]:
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    def _send_on_own(self, commands: Sequence[tuple[object, ...]]) -> list[Any]:
        pool = self.client.connection_pool
        for attempt in (1, 2):
            if self._own is None:
                self._own = pool.get_connection()
            conn = self._own
            try:
                conn.send_packed_command([pack(commands)])
                return self._replies(conn, len(commands))
            except BaseException as exc:
                # A connection in an unknown state: close it and give it back.
                self._own = None
                conn.disconnect()
                pool.release(conn)
                retry = isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OSError)
                if not retry or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_pooled(self, commands: Sequence[tuple[object, ...]]) -> list[Any]:
        pool = self.client.connection_pool
        for attempt in (1, 2):
            conn = pool.get_connection()
            try:
                conn.send_packed_command([pack(commands)])  # type: ignore[no-untyped-call]
                return self._replies(conn, len(commands))
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                conn.disconnect()  # type: ignore[no-untyped-call]
                if attempt == 2:
                    raise
            except BaseException:
                conn.disconnect()  # type: ignore[no-untyped-call]
                raise
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, call: Call) -> Any:
        if self.durability is not None and self.durability.wanted([call]):
            (reply,) = self.run_many([call])
            if isinstance(reply, Exception):
                raise reply
            return reply
        try:
            return self._send(("EVALSHA", *call.evalsha_args(self.compat)))
        except NoScriptError:
            self.load_scripts()
            return self._send(("EVALSHA", *call.evalsha_args(self.compat)))

    def _run_durable(self, calls: Sequence[Call], durability: Durability, transaction: bool) -> list[Any]:
        """The calls and a WAIT in one round trip on one connection."""
        for attempt in (1, 2):
            if transaction and len(calls) > 1:
                raw = self._send_all(_transaction(calls, self.compat, durability))
                replies = _exec_replies(raw, len(calls))
            else:
                raw = self._send_all(
                    [*(("EVALSHA", *c.evalsha_args(self.compat)) for c in calls), durability.command()]
                )
                replies = raw[:-1]
            if attempt == 1 and any(_is_noscript(r) for r in replies):
                self.load_scripts()
                continue
            durability.check(raw[-1])
            return replies
        raise RuntimeError("scripts could not be loaded")  # pragma: no cover

    def run_many(self, calls: Sequence[Call], *, transaction: bool = False) -> list[Any]:
        """All calls in one round trip (all-or-nothing with ``transaction``). Errors are
        returned in place, not raised, so one failed call does not hide the others."""
        if self.durability is not None and self.durability.wanted(calls):
            return self._run_durable(calls, self.durability, transaction)
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

    def __new__(cls, client: aioredis.Redis, **options: Any) -> AsyncRunner:
        # As ``SyncRunner.__new__``: a cluster client gets the cluster runner.
        if cls is AsyncRunner and isinstance(client, aiocluster.RedisCluster):
            from bananas.redis.cluster_runner import AsyncClusterRunner

            return super().__new__(AsyncClusterRunner)
        return super().__new__(cls)

    def __init__(
        self, client: aioredis.Redis, *, dedicated: bool = False, durability: Durability | None = None
    ) -> None:
        self.client = client
        self.durability = durability
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
        if self.durability is not None and self.durability.wanted(calls):
            return await self._run_durable(calls, self.durability, transaction)
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

    async def _run_durable(self, calls: Sequence[Call], durability: Durability, transaction: bool) -> list[Any]:
        """The calls and a WAIT in one round trip on one connection."""
        for attempt in (1, 2):
            if transaction and len(calls) > 1:
                raw = await self.send(_transaction(calls, self.compat, durability))
                replies = _exec_replies(raw, len(calls))
            else:
                raw = await self.send(
                    [*(("EVALSHA", *c.evalsha_args(self.compat)) for c in calls), durability.command()]
                )
                replies = raw[:-1]
            if attempt == 1 and any(_is_noscript(r) for r in replies):
                await self.load_scripts()
                continue
            durability.check(raw[-1])
            return replies
        raise RuntimeError("scripts could not be loaded")  # pragma: no cover

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
