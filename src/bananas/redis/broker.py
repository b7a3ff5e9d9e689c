"""The worker's narrow interface to Redis. Orchestration code calls these methods and
never redis-py directly, so storage concerns stay in this package."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.crc import key_slot

from bananas.core.codec import decode_id
from bananas.redis import calls, keys
from bananas.redis.keys import STANDALONE, KeyLayout
from bananas.redis.runner import AsyncRunner, Durability, pack
from bananas.redis.scripts import Call

#: Seconds the known routing keys (``bananas:routing_keys``) are kept before read again.
KNOWN_ROUTES_TTL = 5.0


class KeyLook:
    """A fixed set of keys looked at often (every second): which of them exist. The
    request is built and encoded once (a worker may listen on 30,000 lists).

    ``by_slot`` (Redis Cluster): a multi-key command must keep to one slot, so the keys
    are put in slot order and no chunk spans two slots; ``index`` maps a key's place in
    ``keys`` back to its place in ``key_names``."""

    #: Keys per EXISTS command.
    CHUNK = 1000

    def __init__(self, key_names: Sequence[str], *, by_slot: bool = False) -> None:
        self.keys = list(key_names)
        #: The keys in the caller's order (``keys`` may be reordered, see ``index``).
        self.names = self.keys
        self.index: list[int] | None = None
        if not by_slot:
            self.chunks = [(lo, min(lo + self.CHUNK, len(self.keys))) for lo in range(0, len(self.keys), self.CHUNK)]
        else:
            slots = [_slot(k) for k in self.keys]
            self.index = sorted(range(len(self.keys)), key=slots.__getitem__)
            self.keys = [self.keys[i] for i in self.index]
            ordered = [slots[i] for i in self.index]
            self.chunks = []
            lo = 0
            for hi in range(1, len(self.keys) + 1):
                if hi == len(self.keys) or ordered[hi] != ordered[lo] or hi - lo >= self.CHUNK:
                    self.chunks.append((lo, hi))
                    lo = hi
        self.commands = [("EXISTS", *self.keys[lo:hi]) for lo, hi in self.chunks]
        self.packed = pack(self.commands)


def _slot(key: str) -> int:
    return int(key_slot(key.encode("utf-8", "surrogateescape")))


class Broker:
    def __init__(
        self, client: aioredis.Redis, *, durability: Durability | None = None, layout: KeyLayout = STANDALONE
    ) -> None:
        self.redis = client
        #: The key names of the server this broker talks to (redis/keys.py).
        self.layout = layout
        # ``durability``: acks, retries and buries wait for replicas (BANANAS_WAIT_REPLICAS).
        self.runner = AsyncRunner(client, durability=durability)
        # The two hot loops each keep a connection of their own (see AsyncRunner).
        self._fetch_runner = AsyncRunner(client, dedicated=True)
        self._write_runner = AsyncRunner(client, dedicated=True, durability=durability)
        self._parked_look: tuple[Sequence[str], KeyLook] | None = None
        #: (when read, the known routing keys) on Redis Cluster; see ``slot_groups``.
        self._known: tuple[float, list[str]] | None = None

    async def close(self) -> None:
        await self._fetch_runner.close()
        await self._write_runner.close()

    async def write_many(self, batch: Sequence[Call]) -> list[Any]:
        """The writer's state changes (one call at a time from one loop)."""
        return await self._write_runner.run_many(batch)

    async def load_scripts(self) -> None:
        await self.runner.load_scripts()

    async def run(self, call: Call) -> Any:
        return await self.runner.run(call)

    async def run_many(self, batch: Sequence[Call]) -> list[Any]:
        return await self.runner.run_many(batch)

    # -- fetching ------------------------------------------------------------------

    async def dequeue(self, call: Call) -> tuple[float, list[tuple[int, str, bytes | None]], list[tuple[int, str]]]:
        """Run a dequeue call; returns (ms until a rate limit opens, [(list index, id, record)]
        leased, [(list index, id)] popped and dropped because another delivery holds the
        id). The records come with the ids (one round trip per pick-up); a record that is
        missing is None."""
        reply = await self._fetch_runner.run(call)
        taken: list[tuple[int, str, bytes | None]] = []
        dropped: list[tuple[int, str]] = []
        for i in range(1, len(reply), 3):
            index = int(reply[i])
            if index > 0:
                taken.append((index - 1, decode_id(reply[i + 1]), reply[i + 2]))
            else:
                dropped.append((-index - 1, decode_id(reply[i + 1])))
        return float(reply[0]), taken, dropped

    async def existing(self, look: KeyLook) -> list[int]:
        """0-based indexes of the keys of ``look`` that exist. One pre-encoded round trip
        of EXISTS over chunks of keys; only a chunk that holds something is looked at key
        by key (``nonempty`` script), so an idle look costs the server a few
        milliseconds at 30,000 keys and this process almost nothing."""
        counts = await self.runner.send(look.commands, packed=look.packed)
        for reply in counts:
            if isinstance(reply, Exception):
                raise reply
        hit = [(lo, hi) for (lo, hi), count in zip(look.chunks, counts, strict=True) if int(count) > 0]
        if not hit:
            return []
        replies = await self.runner.run_many([calls.nonempty(look.keys[lo:hi]) for lo, hi in hit])
        found: list[int] = []
        for (lo, _), reply in zip(hit, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            found += [lo + int(i) - 1 for i in reply]
        if look.index is not None:
            return sorted(look.index[i] for i in found)
        return found

    async def limits_and_parked(self, routing_keys: Sequence[str]) -> tuple[dict[str, str], list[set[str]]]:
        """The fleet limits hash and, per routing key, its parked ``{priority}:{name}`` members.

        Few routing keys have parked jobs: one look finds which indexes exist, and only
        those are read (a worker may listen on 10,000 routing keys)."""
        if self._parked_look is None or self._parked_look[0] is not routing_keys:
            index_names = [self.layout.parked_index(key) for key in routing_keys]
            self._parked_look = (routing_keys, KeyLook(index_names, by_slot=self.layout.cluster))
        look = self._parked_look[1]
        index_keys = look.names
        limits_reply, found = await asyncio.gather(self.redis.hgetall(keys.LIMITS), self.existing(look))
        parked: list[set[str]] = [set() for _ in routing_keys]
        if found:
            pipe = self.redis.pipeline(transaction=False)
            for i in found:
                pipe.smembers(index_keys[i])
            for i, members in zip(found, await pipe.execute(), strict=True):
                parked[i] = {decode_id(m) for m in members}
        return {decode_id(k): decode_id(v) for k, v in limits_reply.items()}, parked

    async def oldest_ready(self, list_keys: Sequence[str]) -> list[bytes | None]:
        """The record of the oldest job in each list (None for an empty list)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in list_keys:
            pipe.lindex(key, -1)
        ids = await pipe.execute()
        present = [decode_id(i) for i in ids if i is not None]
        records = iter(await self.records(present))
        return [next(records) if i is not None else None for i in ids]

    async def records(self, job_ids: Sequence[str]) -> list[bytes | None]:
        if not job_ids:
            return []
        if self.layout.cluster:
            return await self.mget([self.layout.job(i) for i in job_ids])
        (reply,) = await self._fetch_runner.send([("MGET", *(self.layout.job(i) for i in job_ids))])
        if isinstance(reply, Exception):
            raise reply
        return list(reply)

    async def mget(self, names: Sequence[str]) -> list[Any]:
        """MGET of keys of any slots: one MGET per slot on Redis Cluster, all in one
        round trip per master."""
        by_slot: dict[int, list[int]] = {}
        for i, name in enumerate(names):
            by_slot.setdefault(_slot(name), []).append(i)
        groups = list(by_slot.values())
        replies = await self.runner.send([("MGET", *(names[i] for i in group)) for group in groups])
        values: list[Any] = [None] * len(names)
        for group, reply in zip(groups, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            for i, value in zip(group, reply, strict=True):
                values[i] = value
        return values

    async def slot_groups(self, own: Sequence[str]) -> list[tuple[str, ...]]:
        """The routing keys whose lease, scheduled and dead-letter sets a maintenance pass
        visits, grouped by the sets they share (``layout.slot_groups``): standalone, one
        group (the fleet-wide sets); Cluster, one per routing key, this worker's own and
        every known one (``bananas:routing_keys``), so a key nobody listens on any more
        is still recovered and promoted."""
        if not self.layout.cluster:
            return self.layout.slot_groups(list(own) or [""])
        now = time.monotonic()
        if self._known is None or now - self._known[0] > KNOWN_ROUTES_TTL:
            known = sorted(decode_id(k) for k in await self.redis.smembers(keys.ROUTING_KEYS))
            self._known = (now, known)
        return self.layout.slot_groups([*own, *self._known[1]])

    async def _zrange_each(self, commands: Sequence[tuple[object, ...]]) -> list[list[Any]]:
        replies = await self.runner.send(commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [list(r) for r in replies]

    # -- maintenance reads ---------------------------------------------------------

    async def expired_leases(self, groups: Sequence[tuple[str, ...]], now_ms: int, limit: int) -> list[tuple[str, str]]:
        """(job id, lease token or '') of leases whose deadline has passed, at most
        ``limit`` per lease set (one set per slot group, ``slot_groups``)."""
        layout = self.layout
        found = await self._zrange_each(
            [("ZRANGEBYSCORE", layout.leases(g[0]), "-inf", now_ms, "LIMIT", 0, limit) for g in groups]
        )
        asks = [(g, [decode_id(i) for i in ids]) for g, ids in zip(groups, found, strict=True) if ids]
        if not asks:
            return []
        owners = await self._zrange_each([("HMGET", layout.lease_owners(g[0]), *ids) for g, ids in asks])
        return [
            (i, decode_id(o) if o is not None else "")
            for (_, ids), got in zip(asks, owners, strict=True)
            for i, o in zip(ids, got, strict=True)
        ]

    async def due_scheduled(self, groups: Sequence[tuple[str, ...]], now: float, limit: int) -> list[str]:
        """Ids due by ``now``, at most ``limit`` per scheduled set."""
        found = await self._zrange_each(
            [("ZRANGEBYSCORE", self.layout.scheduled(g[0]), "-inf", repr(now), "LIMIT", 0, limit) for g in groups]
        )
        return [decode_id(i) for ids in found for i in ids]

    async def next_due(self, groups: Sequence[tuple[str, ...]]) -> float | None:
        """The earliest due time over the scheduled sets of ``groups``."""
        found = await self._zrange_each([("ZRANGE", self.layout.scheduled(g[0]), 0, 0, "WITHSCORES") for g in groups])
        dues = [float(first[1]) for first in found if first]
        return min(dues) if dues else None

    async def cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        """Those of ``job_ids`` an operator asked to cancel."""
        if not job_ids:
            return []
        names = [self.layout.cancel_request(i) for i in job_ids]
        found = await (self.mget(names) if self.layout.cluster else self.redis.mget(names))
        return [job_id for job_id, mark in zip(job_ids, found, strict=True) if mark is not None]

    async def memory_available(self) -> bool:
        """Whether Redis is below ``maxmemory`` (or has none): it accepts writes that grow
        memory. True when INFO is not allowed (a restricted ACL user): the next dequeue
        finds out, as a full server refuses it whole. On Redis Cluster: every master has
        room (a full one refuses the dequeues of its slots)."""
        client: Any = self.redis
        targets = [{"target_nodes": node} for node in client.get_primaries()] if self.layout.cluster else [{}]
        for target in targets:
            try:
                info = await client.info("memory", **target)
            except redis.exceptions.ResponseError:
                continue
            limit = int(info.get("maxmemory") or 0)
            counted = int(info.get("used_memory") or 0) - int(info.get("mem_not_counted_for_evict") or 0)
            if limit and counted > limit:
                return False
        return True

    # -- worker presence -----------------------------------------------------------

    async def announce(self, worker_id: str, now: float, info: dict[str, str], ttl_ms: int) -> None:
        """Refresh this worker's entry; it expires ``ttl_ms`` after the last call."""
        # Atomic where it can be; on Redis Cluster the two keys live in two slots (each
        # command is idempotent, and the next beat repairs a half-applied one).
        pipe = self.redis.pipeline(transaction=not self.layout.cluster)
        pipe.zadd(keys.WORKERS, {worker_id: now})
        pipe.hset(keys.worker_info(worker_id), mapping=dict(info))  # type: ignore[arg-type]
        pipe.pexpire(keys.worker_info(worker_id), ttl_ms)
        # Forget workers that stopped announcing long ago (readers skip them anyway:
        # their entry has expired).
        pipe.zremrangebyscore(keys.WORKERS, "-inf", now - max(60.0, 10 * ttl_ms / 1000))
        await pipe.execute()

    async def add_throughput(self, counts: Mapping[tuple[int, str], int], ttl_seconds: int) -> None:
        """Add jobs ended per (minute, routing key) to the throughput history."""
        pipe = self.redis.pipeline(transaction=False)
        for (minute, routing_key), count in counts.items():
            pipe.hincrby(keys.throughput(minute), routing_key, count)
        for minute in {minute for minute, _ in counts}:
            pipe.expire(keys.throughput(minute), ttl_seconds)
        await pipe.execute()

    async def retire(self, worker_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(keys.WORKERS, worker_id)
        pipe.delete(keys.worker_info(worker_id))
        await pipe.execute()
