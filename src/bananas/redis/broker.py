"""The worker's narrow interface to Redis. Orchestration code calls these methods and
never redis-py directly, so storage concerns stay in this package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from bananas.core.routing import QueueRef
from bananas.redis import calls, keys
from bananas.redis.runner import AsyncRunner
from bananas.redis.scripts import Call


class Broker:
    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self.runner = AsyncRunner(client)

    async def load_scripts(self) -> None:
        await self.runner.load_scripts()

    async def run(self, call: Call) -> Any:
        return await self.runner.run(call)

    async def run_many(self, batch: Sequence[Call]) -> list[Any]:
        return await self.runner.run_many(batch)

    # -- fetching ------------------------------------------------------------------

    async def dequeue(self, queues: Sequence[QueueRef], deadline_ms: int, token: str, count: int) -> list[str]:
        """Lease up to ``count`` ready ids, in the order of ``queues``."""
        reply = await self.runner.run(calls.dequeue(queues, deadline_ms, token, count))
        return [_text(reply[i]) for i in range(1, len(reply), 2)]

    async def records(self, job_ids: Sequence[str]) -> list[bytes | None]:
        if not job_ids:
            return []
        return list(await self.redis.mget([keys.job(i) for i in job_ids]))  # type: ignore[arg-type]

    # -- maintenance reads ---------------------------------------------------------

    async def expired_leases(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        """(job id, lease token or '') of leases whose deadline has passed."""
        ids = [_text(i) for i in await self.redis.zrangebyscore(keys.LEASES, "-inf", now_ms, 0, limit)]
        if not ids:
            return []
        owners = await self.redis.hmget(keys.LEASE_OWNERS, ids)
        return [(i, _text(o) if o is not None else "") for i, o in zip(ids, owners, strict=True)]

    async def due_scheduled(self, now: float, limit: int) -> list[str]:
        return [_text(i) for i in await self.redis.zrangebyscore(keys.SCHEDULED, "-inf", now, 0, limit)]

    async def next_due(self) -> float | None:
        first = await self.redis.zrange(keys.SCHEDULED, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def drop_scheduled_to_dead(self, job_id: str, stub_record: bytes) -> bool:
        """A scheduled entry whose record is missing or unreadable: park it, keep the data."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(keys.SCHEDULED, job_id)
        pipe.set(keys.job(job_id), stub_record)
        pipe.lrem(keys.DEAD, 0, job_id)
        pipe.lpush(keys.DEAD, job_id)
        removed, *_ = await pipe.execute()
        return bool(removed)

    # -- worker presence -----------------------------------------------------------

    async def announce(self, worker_id: str, now: float, info: dict[str, str], ttl: int) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(keys.WORKERS, {worker_id: now})
        pipe.hset(keys.worker_info(worker_id), mapping=dict(info))  # type: ignore[arg-type]
        pipe.expire(keys.worker_info(worker_id), ttl)
        # Forget workers that stopped announcing long ago.
        pipe.zremrangebyscore(keys.WORKERS, "-inf", now - 10 * ttl)
        await pipe.execute()

    async def retire(self, worker_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(keys.WORKERS, worker_id)
        pipe.delete(keys.worker_info(worker_id))
        await pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
