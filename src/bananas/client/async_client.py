"""The asyncio client: the same methods as ``Client``, awaited."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis

from bananas.client.core import ClientCore, router_from_environment
from bananas.client.inspect import QueueStats, depth_plan, first_round, parked_candidates, parse_depths
from bananas.core import codec
from bananas.core.clock import Clock, ServerClock
from bananas.core.job import DEFAULT_MAX_RETRIES, Job
from bananas.core.priority import Priority
from bananas.core.result import JobResult
from bananas.core.router import Router
from bananas.redis import clock_sync, connection, keys
from bananas.redis.runner import AsyncRunner, raise_first_error
from bananas.results.waiter import ResultWaiter, fetch_result, submit_then_wait


class AsyncClient:
    """Submit jobs and read their state.

    ``redis_url`` defaults to ``$REDIS_URL``, then ``redis://localhost:6379``.

    ``router`` is a route table (``bananas.Router``) giving jobs submitted without a
    routing key (or priority) theirs from their name. Without one, the TOML file named by
    ``$BANANAS_ROUTES`` is loaded if that is set (``router=Router()`` opts out); an
    invalid table raises ``RouteTableError`` here. Precedence: a routing key or priority
    given in the call > the first matching rule > ``default`` and normal.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        max_payload_bytes: int | None = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        clock: Clock | None = None,
        router: Router | None = None,
        redis_client: aioredis.Redis | None = None,
    ) -> None:
        self.redis_url = redis_url or os.environ.get("REDIS_URL") or connection.DEFAULT_REDIS_URL
        self.router = router if router is not None else router_from_environment(os.environ)
        # Due times and record times are the server's (see ServerClock); a given clock
        # is used as it is (tests).
        self._clock = clock if clock is not None else ServerClock()
        self._core = ClientCore(max_payload_bytes=max_payload_bytes, clock=self._clock, router=self.router)
        self.redis = redis_client or connection.async_client(self.redis_url)
        self._runner = AsyncRunner(self.redis)
        self._waiter: ResultWaiter | None = None

    async def _measure_clock(self) -> None:
        if isinstance(self._clock, ServerClock):
            await clock_sync.measure_if_due(self.redis, self._clock)

    def __repr__(self) -> str:
        return f"AsyncClient({connection.mask_url(self.redis_url)!r})"

    async def submit_job(
        self,
        name: str,
        payload: Any,
        priority: Priority | str | None = None,
        *,
        routing_key: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
        result_ttl: int | None = None,
    ) -> str:
        """Queue a job on ``routing_key`` at ``priority``; returns its id.

        Not given, they come from the route table, else ``default`` and normal."""
        await self._measure_clock()
        job_id, call = self._core.submit(
            name,
            payload,
            priority,
            routing_key=routing_key,
            max_retries=max_retries,
            description=description,
            result_ttl=result_ttl,
        )
        await self._runner.run(call)
        return job_id

    async def submit_job_with_route(self, name: str, payload: Any, priority: Priority | str, routing_key: str) -> str:
        """The seed's ``SubmitJobWithRoute``: ``submit_job`` with a positional routing key
        (always explicit, so the route table never overrides it)."""
        return await self.submit_job(name, payload, priority, routing_key=routing_key)

    async def schedule_job(
        self,
        name: str,
        payload: Any,
        *,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: Priority | str | None = None,
        routing_key: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
        result_ttl: int | None = None,
    ) -> str:
        """Queue a job to become ready at ``run_at`` (aware datetime) or after ``delay``."""
        await self._measure_clock()
        job_id, call = self._core.schedule(
            name,
            payload,
            run_at=run_at,
            delay=delay,
            priority=priority,
            routing_key=routing_key,
            max_retries=max_retries,
            description=description,
            result_ttl=result_ttl,
        )
        await self._runner.run(call)
        return job_id

    async def submit_many(
        self,
        name: str,
        payloads: Sequence[Any],
        priority: Priority | str | None = None,
        *,
        routing_key: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> list[str]:
        """Queue one job per payload in one round trip; all are validated first. With a
        route table, each payload is routed on its own and the jobs grouped by queue."""
        await self._measure_clock()
        ids, batch = self._core.submit_many(name, payloads, priority, routing_key=routing_key, max_retries=max_retries)
        if batch:
            raise_first_error(await self._runner.run_many(batch, transaction=len(batch) > 1))
        return ids

    async def submit_and_wait(
        self,
        name: str,
        payload: Any,
        priority: Priority | str | None = None,
        *,
        routing_key: str | None = None,
        timeout: float | None = 30,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
        result_ttl: int | None = None,
    ) -> Any:
        """Submit a job and wait for its result; raises ``JobFailedError`` if it failed
        and ``JobTimeoutError`` after ``timeout`` seconds (the job keeps running)."""
        await self._measure_clock()
        job_id, call = self._core.submit(
            name,
            payload,
            priority,
            routing_key=routing_key,
            max_retries=max_retries,
            description=description,
            result_ttl=result_ttl,
        )
        found = await submit_then_wait(self._runner, self._result_waiter(), job_id, call, timeout)
        return found.value()

    async def get_result(self, job_id: str, timeout: float | None = None) -> Any:
        """The job's return value. With ``timeout`` (seconds), wait for it that long and
        raise ``JobTimeoutError`` if it does not come; without, return ``None`` if the job
        has not finished. A failed job raises ``JobFailedError``."""
        found = await fetch_result(self.redis, job_id)
        if found is None and timeout is not None:
            found = await self._result_waiter().wait(job_id, timeout)
        return None if found is None else found.value()

    async def get_job_result(self, job_id: str) -> JobResult | None:
        """The stored outcome (status, result or error, timings, worker), or ``None``."""
        return await fetch_result(self.redis, job_id)

    def _result_waiter(self) -> ResultWaiter:
        if self._waiter is None:
            self._waiter = ResultWaiter(self.redis)
        return self._waiter

    async def get_job(self, job_id: str) -> Job | None:
        """The job's current record, or ``None`` if there is none (or it expired)."""
        raw = await self.redis.get(keys.job(job_id))
        return None if raw is None else Job.from_record(raw, job_id=job_id)

    async def queue_stats(self) -> QueueStats:
        """Ready jobs per routing key and priority (every key seen), scheduled, in flight, dead."""
        routing_keys = sorted(k.decode() for k in (await self.redis.smembers(keys.ROUTING_KEYS)))  # type: ignore[union-attr]
        plan = depth_plan(routing_keys)
        pipe = self.redis.pipeline(transaction=False)
        for command, key in first_round(plan):
            pipe.execute_command(command, key)
        replies = await pipe.execute()
        parked = parked_candidates(plan, replies)
        pipe = self.redis.pipeline(transaction=False)
        for entry in parked:
            pipe.llen(entry.key)
        parked_depths = await pipe.execute() if parked else []
        return parse_depths(plan, replies, parked, parked_depths)

    async def aclose(self) -> None:
        if self._waiter is not None:
            await self._waiter.aclose()
            self._waiter = None
        await self.redis.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
