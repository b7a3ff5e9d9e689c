"""The runners on a Redis Cluster client (``redis+cluster://``).

Every script call is single-slot (the cluster key layout tags all of a call's keys with
its routing key), so a call goes to the master owning the slot of its first key. A batch
is split by master and each master gets one pipeline on one of its connections, sent
concurrently (async). With ``BANANAS_WAIT_REPLICAS`` the ``WAIT`` goes at the end of each
master's pipeline that holds a durable write: ``WAIT`` counts the replicas of the
connection's own writes, so it must follow them on the same connection.

A moved slot (``MOVED``), a failed-over master (connection refused, ``CLUSTERDOWN``) or a
slot being migrated (``ASK``, ``TRYAGAIN``) re-reads the slot map and sends the calls
concerned again. That is safe for the same reason as the standalone runner's one
reconnect: every script checks state (SET NX, lease tokens) and a call refused with a
redirection did not run. Scripts are loaded on every master; ``NOSCRIPT`` from one (a
restarted or new master) loads them everywhere again.

The standalone runners are untouched: ``AsyncRunner(client)`` and ``SyncRunner(client)``
return these classes only for a cluster client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Sequence
from typing import Any

import redis.asyncio.cluster as aiocluster
import redis.cluster
import redis.exceptions
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, ResponseError, TryAgainError

from bananas.redis.runner import AsyncRunner, Durability, SyncRunner, _is_noscript, pack
from bananas.redis.scripts import SCRIPTS, Call, compat_sources, needs_compat

log = logging.getLogger("bananas.redis")

#: Rounds of re-reading the slot map and sending again before an error is given up on.
ATTEMPTS = 4
#: Pause before another round while the cluster settles (a slot mid-migration, a failover).
SETTLE_SECONDS = 0.1

_LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
#: Error replies that mean "not here / not now": the call did not run; send it again.
_REDIRECTED = (MovedError, AskError, TryAgainError, redis.exceptions.ClusterDownError)


#: Round trips at once per cluster node and client, below the node pool's size
#: (connection.CLUSTER_MAX_CONNECTIONS), which Pub/Sub and redis-py's own commands share.
PER_NODE = 128
_TURNS: weakref.WeakKeyDictionary[Any, dict[str, asyncio.Semaphore]] = weakref.WeakKeyDictionary()


def _turns(client: Any, node_name: str) -> asyncio.Semaphore:
    per_node = _TURNS.setdefault(client, {})
    turns = per_node.get(node_name)
    if turns is None:
        turns = per_node[node_name] = asyncio.Semaphore(PER_NODE)
    return turns


class CrossSlotTransactionError(redis.exceptions.RedisError):
    """A transaction's calls live in several slots: Redis Cluster cannot run them atomically."""


def slot_of(key: object) -> int:
    raw = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    return int(key_slot(raw))  # type: ignore[arg-type]


def _call_slot(call: Call) -> int:
    if not call.keys:
        raise ValueError(f"script {call.script.value} takes no keys: it has no slot on Redis Cluster")
    return slot_of(call.keys[0])


def _command_slot(command: tuple[object, ...]) -> int | None:
    """The slot of a raw command's first key (commands whose second word is a key);
    None for keyless commands (TIME, PING...)."""
    return slot_of(command[1]) if len(command) > 1 else None


def _evalsha(call: Call, compat: bool) -> tuple[object, ...]:
    return ("EVALSHA", *call.evalsha_args(compat))


def _unit_replies(
    replies: list[Any], count: int, transaction: bool, durability: Durability | None, asking: bool = False
) -> tuple[list[Any], Any]:
    """Split one node's raw replies into the calls' replies and the WAIT reply (or None)."""
    wait = replies.pop() if durability is not None else None
    if asking:
        replies = replies[1::2]  # each call's ASKING said OK
    if not transaction:
        return replies, wait
    executed = replies[-1]
    if isinstance(executed, Exception) or executed is None:
        queued = [r for r in replies[1:-1] if isinstance(r, Exception)]
        error = queued[0] if queued else executed
        return [error if isinstance(error, Exception) else RuntimeError("transaction aborted")] * count, wait
    return list(executed), wait


def _unit(
    calls: Sequence[Call], compat: bool, transaction: bool, durability: Durability | None, asking: bool = False
) -> list[tuple[object, ...]]:
    """One node's commands: the calls (each after ASKING when the slot is being moved
    to that node), in MULTI/EXEC for a transaction, then WAIT."""
    if asking:
        commands = [command for call in calls for command in (("ASKING",), _evalsha(call, compat))]
    else:
        commands = [_evalsha(call, compat) for call in calls]
    if transaction:
        commands = [("MULTI",), *commands, ("EXEC",)]
    if durability is not None:
        commands.append(durability.command())
    return commands


def _target(client: Any, call: Call, last: object, transaction: bool) -> tuple[Any, bool]:
    """Where a call goes: the master of its slot, or, after an ASK (its slot is being
    moved), the node that asked, with ASKING (not in a transaction: sent again later)."""
    if isinstance(last, AskError) and not isinstance(last, MovedError) and not transaction:
        node = client.nodes_manager.get_node(host=last.host, port=last.port)
        if node is not None:
            return node, True
    return client.nodes_manager.get_node_from_slot(_call_slot(call)), False


def _wrote(replies: Sequence[Any]) -> bool:
    """Whether any call of a unit ran (a script that answered with an error did not write,
    a redirected or NOSCRIPT one did not run)."""
    return any(not isinstance(reply, Exception) for reply in replies)


def _one_slot(calls: Sequence[Call]) -> None:
    slots = {_call_slot(call) for call in calls}
    if len(slots) > 1:
        raise CrossSlotTransactionError(
            f"a transaction of {len(calls)} script calls spans {len(slots)} hash slots; "
            "on Redis Cluster an atomic batch must stay in one routing key"
        )


class AsyncClusterRunner(AsyncRunner):
    """``AsyncRunner`` for ``redis.asyncio.cluster.RedisCluster`` (see the module docstring)."""

    client: Any

    def __init__(self, client: Any, *, dedicated: bool = False, durability: Durability | None = None) -> None:
        super().__init__(client, dedicated=dedicated, durability=durability)
        self._loaded_epoch = -1

    async def close(self) -> None:
        """Nothing of its own to give back: connections return to their node at once."""

    async def _ready(self) -> None:
        await self.client.initialize()

    async def _refresh(self, failed: Any = None) -> None:
        """Re-read the slot map (after MOVED, a lost master, CLUSTERDOWN)."""
        try:
            await self.client.nodes_manager.initialize(last_failed_node_name=getattr(failed, "name", None))
        except Exception as exc:  # the next round reports what is still wrong
            log.debug("re-reading the cluster slot map failed: %s", exc)

    def _node(self, slot: int | None) -> Any:
        if slot is None:
            return self.client.get_default_node()
        return self.client.nodes_manager.get_node_from_slot(slot)

    def _target(self, call: Call, last: object, transaction: bool) -> tuple[Any, bool]:
        return _target(self.client, call, last, transaction)

    async def _exchange(self, node: Any, commands: Sequence[tuple[object, ...]]) -> list[Any]:
        """Commands in one round trip on one connection of ``node``; error replies in place.
        The cluster client's node pools fail when they run dry rather than wait: callers
        beyond ``PER_NODE`` round trips at once wait here for their turn (as the blocking
        pool of the standalone client makes them wait)."""
        async with _turns(self.client, node.name):
            return await self._exchange_now(node, commands)

    async def _exchange_now(self, node: Any, commands: Sequence[tuple[object, ...]]) -> list[Any]:
        conn = node.acquire_connection()
        try:
            await conn.send_packed_command([pack(commands)])
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            node.release(conn)
        return replies

    async def load_scripts(self) -> None:
        await self._ready()
        primaries = self.client.get_primaries()
        loads = [("SCRIPT", "LOAD", script.source) for script in SCRIPTS.values()]
        answers = await asyncio.gather(*(self._exchange(node, loads) for node in primaries))
        if any(needs_compat(replies) for replies in answers):
            compat = [("SCRIPT", "LOAD", source) for source in compat_sources()]
            for replies in await asyncio.gather(*(self._exchange(node, compat) for node in primaries)):
                for reply in replies:
                    if isinstance(reply, Exception):
                        raise reply
            self.compat = True

    async def send(self, commands: Sequence[tuple[object, ...]], *, packed: bytes | None = None) -> list[Any]:
        """Raw commands, each sent to the master owning its first key (a multi-key
        command must keep to one slot); error replies in place. ``packed`` is not used:
        the commands are split by master."""
        await self._ready()
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        for attempt in range(1, ATTEMPTS + 1):
            groups: dict[Any, list[int]] = {}
            for i in todo:
                groups.setdefault(self._node(_command_slot(commands[i])), []).append(i)
            todo, lost = await self._send_groups(groups, commands, replies)
            if not todo:
                return replies
            await self._settle(attempt, lost)
        return replies

    async def _send_groups(
        self, groups: dict[Any, list[int]], commands: Sequence[tuple[object, ...]], replies: list[Any]
    ) -> tuple[list[int], Any]:
        """Send each node's group; fill ``replies``; return the indexes to send again."""
        nodes = list(groups)
        answers = await asyncio.gather(
            *(self._exchange(node, [commands[i] for i in groups[node]]) for node in nodes), return_exceptions=True
        )
        again: list[int] = []
        lost = None
        for node, answer in zip(nodes, answers, strict=True):
            indexes = groups[node]
            if isinstance(answer, _LOST):
                lost, answer = node, [answer] * len(indexes)
                again += indexes
            elif isinstance(answer, BaseException):
                raise answer
            for i, reply in zip(indexes, answer, strict=True):
                replies[i] = reply
                if isinstance(reply, _REDIRECTED) and i not in again:
                    again.append(i)
        return sorted(again), lost

    async def _settle(self, attempt: int, lost: Any) -> None:
        if attempt >= ATTEMPTS:
            return
        if attempt > 1:
            await asyncio.sleep(SETTLE_SECONDS * attempt)
        await self._refresh(lost)

    async def run_many(self, calls: Sequence[Call], *, transaction: bool = False) -> list[Any]:
        await self._ready()
        transaction = transaction and len(calls) > 1
        if transaction:
            _one_slot(calls)
        durability = self.durability if self.durability is not None and self.durability.wanted(calls) else None
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        loaded = False
        for attempt in range(1, ATTEMPTS + 1):
            groups: dict[tuple[Any, bool], list[int]] = {}
            for i in todo:
                groups.setdefault(self._target(calls[i], replies[i], transaction), []).append(i)
            todo, lost = await self._run_groups(groups, calls, transaction, durability, replies)
            missing = [i for i in range(len(calls)) if _is_noscript(replies[i])]
            if missing and not loaded:
                loaded = True
                await self.load_scripts()
                todo = sorted({*todo, *missing}) if not transaction else list(range(len(calls)))
            if not todo:
                return replies
            await self._settle(attempt, lost)
        for reply in replies:
            if isinstance(reply, (*_LOST, *_REDIRECTED)):
                raise reply  # the cluster is still moving: the caller backs off
        return replies

    def _unit_of(
        self, group: Sequence[Call], transaction: bool, durability: Durability | None, asking: bool
    ) -> list[tuple[object, ...]]:
        wanted = durability if durability is not None and durability.wanted(group) else None
        return _unit(group, self.compat, transaction, wanted, asking)

    async def _run_groups(
        self,
        groups: dict[tuple[Any, bool], list[int]],
        calls: Sequence[Call],
        transaction: bool,
        durability: Durability | None,
        replies: list[Any],
    ) -> tuple[list[int], Any]:
        targets = list(groups)
        units = [
            self._unit_of([calls[i] for i in groups[target]], transaction, durability, target[1]) for target in targets
        ]
        answers = await asyncio.gather(
            *(self._exchange(node, unit) for (node, _), unit in zip(targets, units, strict=True)),
            return_exceptions=True,
        )
        again: list[int] = []
        lost = None
        for (node, asking), unit, answer in zip(targets, units, answers, strict=True):
            indexes = groups[node, asking]
            if isinstance(answer, _LOST):
                lost = node
                for i in indexes:
                    replies[i] = answer
                again += indexes
                continue
            if isinstance(answer, BaseException):
                raise answer
            waited = durability if unit[-1][0] == "WAIT" else None
            got, wait = _unit_replies(answer, len(indexes), transaction, waited, asking)
            for i, reply in zip(indexes, got, strict=True):
                replies[i] = reply
                if isinstance(reply, _REDIRECTED):
                    again.append(i)
            if waited is not None and _wrote(got):
                # The WAIT followed the writes that ran on this connection: it answers for
                # them (calls sent again elsewhere get a WAIT of their own there).
                waited.check(wait)
        return sorted(again), lost


class SyncClusterRunner(SyncRunner):
    """``SyncRunner`` for ``redis.cluster.RedisCluster``: the same routing, one master at
    a time (a blocking caller waits for all of them anyway)."""

    client: Any

    def close(self) -> None:
        """Nothing of its own to give back."""

    def _refresh(self, failed: Any = None) -> None:
        try:
            self.client.nodes_manager.initialize()
        except Exception as exc:
            log.debug("re-reading the cluster slot map failed: %s", exc)

    def _node(self, slot: int | None) -> Any:
        if slot is None:
            return self.client.get_default_node()
        return self.client.nodes_manager.get_node_from_slot(slot)

    def _exchange(self, node: Any, commands: Sequence[tuple[object, ...]]) -> list[Any]:
        pool = node.redis_connection.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([pack(commands)])
            return self._replies(conn, len(commands))
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def load_scripts(self) -> None:
        primaries = self.client.get_primaries()
        loads = [("SCRIPT", "LOAD", script.source) for script in SCRIPTS.values()]
        if any(needs_compat(self._exchange(node, loads)) for node in primaries):
            compat = [("SCRIPT", "LOAD", source) for source in compat_sources()]
            for node in primaries:
                for reply in self._exchange(node, compat):
                    if isinstance(reply, Exception):
                        raise reply
            self.compat = True

    def _send_all(self, commands: Sequence[tuple[object, ...]]) -> list[Any]:
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        for attempt in range(1, ATTEMPTS + 1):
            groups: dict[Any, list[int]] = {}
            for i in todo:
                groups.setdefault(self._node(_command_slot(commands[i])), []).append(i)
            again: list[int] = []
            lost = None
            for node, indexes in groups.items():
                try:
                    answer = self._exchange(node, [commands[i] for i in indexes])
                except _LOST as exc:
                    lost, answer = node, [exc] * len(indexes)
                    again += indexes
                for i, reply in zip(indexes, answer, strict=True):
                    replies[i] = reply
                    if isinstance(reply, _REDIRECTED) and i not in again:
                        again.append(i)
            todo = sorted(again)
            if not todo:
                return replies
            if attempt < ATTEMPTS:
                if attempt > 1:
                    time.sleep(SETTLE_SECONDS * attempt)
                self._refresh(lost)
        return replies

    def run(self, call: Call) -> Any:
        (reply,) = self.run_many([call])
        if isinstance(reply, Exception):
            raise reply
        return reply

    def run_many(self, calls: Sequence[Call], *, transaction: bool = False) -> list[Any]:
        transaction = transaction and len(calls) > 1
        if transaction:
            _one_slot(calls)
        durability = self.durability if self.durability is not None and self.durability.wanted(calls) else None
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        loaded = False
        for attempt in range(1, ATTEMPTS + 1):
            groups: dict[tuple[Any, bool], list[int]] = {}
            for i in todo:
                groups.setdefault(_target(self.client, calls[i], replies[i], transaction), []).append(i)
            again: list[int] = []
            lost = None
            for (node, asking), indexes in groups.items():
                group = [calls[i] for i in indexes]
                wanted = durability if durability is not None and durability.wanted(group) else None
                unit = _unit(group, self.compat, transaction, wanted, asking)
                try:
                    answer = self._exchange(node, unit)
                except _LOST as exc:
                    lost = node
                    for i in indexes:
                        replies[i] = exc
                    again += indexes
                    continue
                got, wait = _unit_replies(answer, len(indexes), transaction, wanted, asking)
                for i, reply in zip(indexes, got, strict=True):
                    replies[i] = reply
                    if isinstance(reply, _REDIRECTED):
                        again.append(i)
                if wanted is not None and _wrote(got):
                    wanted.check(wait)
            todo = sorted(again)
            missing = [i for i in range(len(calls)) if _is_noscript(replies[i])]
            if missing and not loaded:
                loaded = True
                self.load_scripts()
                todo = sorted({*todo, *missing}) if not transaction else list(range(len(calls)))
            if not todo:
                return replies
            if attempt < ATTEMPTS:
                if attempt > 1:
                    time.sleep(SETTLE_SECONDS * attempt)
                self._refresh(lost)
        for reply in replies:
            if isinstance(reply, (*_LOST, *_REDIRECTED)):
                raise reply  # the cluster is still moving: the caller backs off
        return replies


def is_cluster(client: object) -> bool:
    return isinstance(client, redis.cluster.RedisCluster | aiocluster.RedisCluster)
