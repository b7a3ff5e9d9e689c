"""Reads for the reconciler: where every job id is, in one atomic picture.

Kept in the redis package (the only one that talks to redis-py); the reconciler
(bananas.worker.reconciler) decides what is broken from these reads and repairs with
scripts.

On Redis Cluster an inventory is scoped to one routing key's slot (``routing_key``): its
lists, lease, scheduled and dead-letter sets share that slot, so the picture is still
one MULTI/EXEC; the reconciler takes one per known routing key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from bananas.core.codec import decode_id
from bananas.core.priority import Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY
from bananas.redis import keys
from bananas.redis.keys import STANDALONE, KeyLayout

_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Sizes:
    lists: dict[str, int]
    dead: int
    scheduled: int
    leases: int
    owners: int

    @property
    def list_entries(self) -> int:
        return sum(self.lists.values()) + self.dead


@dataclass(slots=True)
class Picture:
    """Everything read in one MULTI/EXEC. A part not asked for is left empty."""

    leases: dict[str, int] = field(default_factory=dict)  # id -> deadline, Unix ms
    owners: dict[str, str] = field(default_factory=dict)  # id -> lease token
    lists: dict[str, list[str]] = field(default_factory=dict)  # ready list -> ids
    dead: list[str] = field(default_factory=list)
    scheduled: dict[str, float] = field(default_factory=dict)  # id -> due, Unix s


class Inventory:
    def __init__(self, client: aioredis.Redis, layout: KeyLayout = STANDALONE, routing_key: str = "") -> None:
        """``routing_key``: the cluster layout's slot this inventory reads (ignored by the
        standalone layout, whose sets are fleet-wide)."""
        self._redis = client
        self._layout = layout
        self._rk = routing_key
        #: Cluster orphan sweep: (masters by name, which one, its SCAN cursor).
        self._scan: tuple[list[str], int, int] | None = None

    async def ready_lists(self) -> list[str]:
        """Every ready list of the known routing keys (``bananas:routing_keys`` plus
        ``default``): main lists, per-name (parked) lists, and the legacy lists. On the
        cluster layout: those of this inventory's routing key."""
        layout = self._layout
        if layout.cluster:
            routing_keys = [self._rk]
        else:
            found = {decode_id(k) for k in await self._redis.smembers(keys.ROUTING_KEYS)}
            routing_keys = sorted(found | {DEFAULT_ROUTING_KEY})
        pipe = self._redis.pipeline(transaction=False)
        for key in routing_keys:
            pipe.smembers(layout.parked_index(key))
        parked = await pipe.execute()
        queues = [layout.queue(k, p) for k in routing_keys for p in Priority]
        for key, members in zip(routing_keys, parked, strict=True):
            for member in sorted(decode_id(m) for m in members):
                prio, sep, name = member.partition(":")
                if sep and name:
                    with contextlib.suppress(ValueError):
                        queues.append(layout.parked_queue(key, prio, name))
        if not layout.cluster:
            queues += [layout.legacy_queue(p) for p in Priority]
        return queues

    async def sizes(self, lists: Sequence[str]) -> Sizes:
        layout, rk = self._layout, self._rk
        pipe = self._redis.pipeline(transaction=False)
        for name in lists:
            pipe.llen(name)
        pipe.llen(layout.dead(rk))
        pipe.zcard(layout.scheduled(rk))
        pipe.zcard(layout.leases(rk))
        pipe.hlen(layout.lease_owners(rk))
        *lengths, dead, scheduled, leases, owners = await pipe.execute()
        return Sizes(dict(zip(lists, map(int, lengths), strict=True)), int(dead), int(scheduled), leases, owners)

    async def picture(
        self, lists: Sequence[str], *, with_leases: bool, with_lists: bool, with_scheduled: bool
    ) -> Picture:
        """One MULTI/EXEC: an atomic picture, so a job moving from one place to another
        while we read is never seen in both (or in neither)."""
        pic = Picture()
        layout, rk = self._layout, self._rk
        pipe = self._redis.pipeline(transaction=True)
        if with_leases:
            pipe.zrange(layout.leases(rk), 0, -1, withscores=True)
            pipe.hgetall(layout.lease_owners(rk))
        if with_lists:
            for name in lists:
                pipe.lrange(name, 0, -1)
            pipe.lrange(layout.dead(rk), 0, -1)
        if with_scheduled:
            pipe.zrange(layout.scheduled(rk), 0, -1, withscores=True)
        if not len(pipe):
            return pic
        replies = list(await pipe.execute())
        replies.reverse()
        if with_leases:
            pic.leases = {decode_id(m): int(s) for m, s in replies.pop()}
            pic.owners = {decode_id(m): decode_id(t) for m, t in replies.pop().items()}
        if with_lists:
            for name in lists:
                pic.lists[name] = [decode_id(m) for m in replies.pop()]
            pic.dead = [decode_id(m) for m in replies.pop()]
        if with_scheduled:
            pic.scheduled = {decode_id(m): float(s) for m, s in replies.pop()}
        return pic

    async def missing_records(self, job_ids: Sequence[str]) -> set[str]:
        missing: set[str] = set()
        for start in range(0, len(job_ids), _CHUNK):
            chunk = job_ids[start : start + _CHUNK]
            pipe = self._redis.pipeline(transaction=False)
            for job_id in chunk:
                pipe.exists(self._layout.job(job_id))
            for job_id, exists in zip(chunk, await pipe.execute(), strict=True):
                if not exists:
                    missing.add(job_id)
        return missing

    async def scan_job_ids(self, cursor: int, count: int = _CHUNK) -> tuple[int, list[str]]:
        """One SCAN step over the job records: (next cursor, job ids); cursor 0 starts
        over and a returned 0 says the sweep is complete. On Redis Cluster the step is
        taken on one master after the other (their SCAN cursors are kept here; the
        returned cursor only says "not done")."""
        layout = self._layout
        if layout.cluster:
            return await self._scan_masters(cursor, count)
        prefix = layout.job("")
        cursor, found = await self._redis.scan(cursor, match=layout.job("*"), count=count)
        return int(cursor), [decode_id(k)[len(prefix) :] for k in found]

    async def _scan_masters(self, cursor: int, count: int) -> tuple[int, list[str]]:
        client: Any = self._redis
        if cursor == 0 or self._scan is None:
            self._scan = ([node.name for node in client.get_primaries()], 0, 0)
        names, at, node_cursor = self._scan
        if at >= len(names):
            self._scan = None
            return 0, []
        node = client.get_node(node_name=names[at])
        ids: list[str] = []
        if node is not None:
            # Every record of the cluster layout: bananas:route:{<routing_key>}:job:<id>.
            reply = await client.execute_command(
                "SCAN", node_cursor, "MATCH", f"{keys.PREFIX}:route:{{*}}:job:*", "COUNT", count, target_nodes=node
            )
            # redis-py's cluster client reports the cursor per node: ({name: cursor}, keys).
            head, found = reply[0], reply[1]
            node_cursor = int(next(iter(head.values())) if isinstance(head, dict) else head)
            ids = [decode_id(k).partition(":job:")[2] for k in found]
        if node is None or node_cursor == 0:
            at, node_cursor = at + 1, 0
        if at >= len(names):
            self._scan = None
            return 0, ids
        self._scan = (names, at, node_cursor)
        return at + 1, ids

    async def held_by_original(self) -> set[str]:
        """Ids in ``bananas:queue:processing``: jobs original Go workers are running
        (none on Redis Cluster, where the original fleet does not run)."""
        if self._layout.cluster:
            return set()
        return {decode_id(m) for m in await self._redis.lrange(keys.ORIGINAL_PROCESSING, 0, -1)}

    async def worker_alive(self, worker_id: str) -> bool:
        """Whether the worker still announces itself (its info hash has not expired)."""
        return bool(await self._redis.exists(keys.worker_info(worker_id)))

    async def try_lock(self, owner: str, ttl_ms: int) -> bool:
        """The fleet-wide reconcile lock, for ``ttl_ms`` (never released early)."""
        return bool(await self._redis.set(keys.RECONCILE_LOCK, owner, nx=True, px=ttl_ms))
