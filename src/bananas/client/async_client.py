"""The asyncio client: the same methods as ``Client``, awaited."""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis

from bananas.client import control
from bananas.client.core import CANCEL_TRIES, ClientCore, router_from_environment
from bananas.client.inspect import QueueStats, read_paused, read_queue_stats, read_running, read_workers
from bananas.client.workflows import AsyncWorkflowHandle, read_job_and_progress, read_progress, read_workflow
from bananas.core import codec
from bananas.core.clock import Clock, ServerClock
from bananas.core.compat import COMPAT_ENV, parse_compat
from bananas.core.fleet import PausedQueue, RunningJob, WorkerInfo
from bananas.core.job import DEFAULT_MAX_RETRIES, Job
from bananas.core.priority import Priority
from bananas.core.progress import Progress
from bananas.core.result import JobResult
from bananas.core.router import Router
from bananas.core.workflow import Workflow, WorkflowInfo
from bananas.errors import BananasError
from bananas.redis import clock_sync, connection, keys
from bananas.redis.runner import AsyncRunner, durability, raise_first_error, wait_replicas_from
from bananas.redis.scripts import Call
from bananas.results.progress import ProgressCallback, wait_with_progress
from bananas.results.waiter import ResultWaiter, fetch_result, submit_then_wait
from bananas.tracing import producer_span


class AsyncClient:
    """Submit jobs and read their state.

    ``redis_url`` defaults to ``$REDIS_URL``, then ``redis://localhost:6379``.

    ``router`` is a route table (``bananas.Router``) giving jobs submitted without a
    routing key (or priority) theirs from their name. Without one, the TOML file named by
    ``$BANANAS_ROUTES`` is loaded if that is set (``router=Router()`` opts out); an
    invalid table raises ``RouteTableError`` here. Precedence: a routing key or priority
    given in the call > the first matching rule > ``default`` and normal.

    ``wait_replicas`` (default ``$BANANAS_WAIT_REPLICAS``, else 0): submits return only
    once that many replicas hold the job (``WAIT``), so a failover cannot lose it; too few
    replicas in time raises ``NotReplicatedError`` (the job is on the master only).

    ``compat="original"`` (default: ``$BANANAS_COMPAT``, else off) is the migration mode
    of docs/MIGRATING.md: jobs of the ``default`` routing key go to the legacy lists
    ``bananas:queue:<priority>`` that the original Go workers read (ours read them too).
    Any other value raises ``ValidationError``.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        max_payload_bytes: int | None = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        clock: Clock | None = None,
        router: Router | None = None,
        redis_client: aioredis.Redis | None = None,
        wait_replicas: int | None = None,
        compat: str | None = None,
    ) -> None:
        self.redis_url = redis_url or os.environ.get("REDIS_URL") or connection.DEFAULT_REDIS_URL
        #: Replicas each submit waits for (``WAIT``); ``$BANANAS_WAIT_REPLICAS`` when not given.
        self.wait_replicas = wait_replicas_from(wait_replicas, os.environ)
        self.compat = (
            parse_compat(compat, "compat")
            if compat is not None
            else parse_compat(os.environ.get(COMPAT_ENV), COMPAT_ENV)
        )
        self.router = router if router is not None else router_from_environment(os.environ)
        # Due times and record times are the server's (see ServerClock); a given clock
        # is used as it is (tests).
        self._clock = clock if clock is not None else ServerClock()
        # The key names of the server: the cluster layout for a redis+cluster:// URL (or a
        # cluster client given), the standalone one otherwise (redis/keys.py).
        self.layout = (
            keys.CLUSTER if connection.is_cluster_client(redis_client) else keys.layout_for_url(self.redis_url)
        )
        self._core = ClientCore(
            max_payload_bytes=max_payload_bytes,
            clock=self._clock,
            router=self.router,
            compat=self.compat,
            layout=self.layout,
        )
        #: Routing keys this client added to the fleet-wide registry (Cluster only).
        self._registered: set[str] = set()
        self.redis = redis_client or connection.async_client(self.redis_url)
        self._runner = AsyncRunner(self.redis, durability=durability(self.wait_replicas))
        self._waiter: ResultWaiter | None = None

    async def _register(self, job_ids: Sequence[str]) -> None:
        """Cluster layout: add the routing keys of ``job_ids`` to ``bananas:routing_keys``
        (idempotent), beside the submit script that could not (another slot); once per
        key per client. Standalone: nothing, the scripts did it."""
        if not self.layout.cluster:
            return
        routing_keys = self._core.routing_keys_of(job_ids)
        commands = self._core.registry_commands(routing_keys, self._registered)
        if commands:
            await self._send_batch(commands)
            self._registered.update(routing_keys)

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
        expires_in: float | timedelta | None = None,
        unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
    ) -> str:
        """Queue a job on ``routing_key`` at ``priority``; returns its id.

        Not given, they come from the route table, else ``default`` and normal.

        With ``unique_key``: while a job submitted with the same key is queued or running
        (for at most ``unique_for`` seconds, default a day), this queues nothing and
        returns that job's id. The key is released when that job ends."""
        await self._measure_clock()
        with producer_span(name) as span:
            job_id, call = self._core.submit(
                name,
                payload,
                priority,
                routing_key=routing_key,
                max_retries=max_retries,
                description=description,
                result_ttl=result_ttl,
                expires_in=expires_in,
                traceparent=span.traceparent,
                unique_key=unique_key,
                unique_for=unique_for,
            )
            span.submitted([job_id])
            reply = await self._runner.run(call)
            await self._register([job_id])
        if unique_key is not None and reply:
            return reply.decode() if isinstance(reply, bytes) else str(reply)
        return job_id

    async def submit(
        self, workflow: Workflow, *, workflow_ttl: int | None = None, result_ttl: int | None = None
    ) -> AsyncWorkflowHandle:
        """Submit a workflow (``bananas.chain``, ``group``, ``chord`` or a ``sig``); every
        step is routed like a submitted job. ``workflow_ttl``: seconds its state is kept
        while it runs (default 7 days); ``result_ttl``: after it ended (default a day)."""
        with producer_span("workflow") as span:
            plan, call = self._core.submit_workflow(
                workflow, workflow_ttl=workflow_ttl, result_ttl=result_ttl, traceparent=span.traceparent
            )
            span.submitted([job.id for stage in plan.stages for job in stage])
            await self._runner.run(call)
            await self._register([plan.id])
        return AsyncWorkflowHandle(self, plan.id, [[job.id for job in stage] for stage in plan.stages])

    async def get_workflow(self, workflow_id: str) -> WorkflowInfo | None:
        """The workflow's state (running, completed, failed) and every step's, or None."""
        if not self._core.knows(workflow_id):
            return None
        return await self._drive(read_workflow(workflow_id, self.layout))  # type: ignore[no-any-return]

    async def wait_workflow(self, workflow_id: str, timeout: float | None = 30) -> Any:
        """The workflow's result: the last step's (a list for a final group, the chord
        callback's). Raises ``JobFailedError`` if it failed, ``JobTimeoutError`` after
        ``timeout`` seconds (None: no limit), ``BananasError`` if there is no such workflow."""
        found = await self.get_job_result(workflow_id)
        if found is None:
            if not self._core.knows(workflow_id) or not await self.redis.exists(self.layout.workflow(workflow_id)):
                raise BananasError(f"no workflow {workflow_id!r} (never submitted, or its state expired)")
            found = await self._result_waiter().wait(workflow_id, timeout)
        return found.value()

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
        expires_in: float | timedelta | None = None,
    ) -> str:
        """Queue a job to become ready at ``run_at`` (aware datetime) or after ``delay``."""
        await self._measure_clock()
        with producer_span(name) as span:
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
                expires_in=expires_in,
                traceparent=span.traceparent,
            )
            span.submitted([job_id])
            await self._runner.run(call)
            await self._register([job_id])
        return job_id

    async def submit_many(
        self,
        name: str,
        payloads: Sequence[Any],
        priority: Priority | str | None = None,
        *,
        routing_key: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        expires_in: float | timedelta | None = None,
    ) -> list[str]:
        """Queue one job per payload in one round trip; all are validated first. With a
        route table, each payload is routed on its own and the jobs grouped by queue."""
        await self._measure_clock()
        with producer_span(name) as span:
            ids, batch = self._core.submit_many(
                name,
                payloads,
                priority,
                routing_key=routing_key,
                max_retries=max_retries,
                expires_in=expires_in,
                traceparent=span.traceparent,
            )
            span.submitted(ids)
            if batch:
                atomic = len(batch) > 1 and self._core.single_slot(batch)
                raise_first_error(await self._runner.run_many(batch, transaction=atomic))
                await self._register(ids)
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
        expires_in: float | timedelta | None = None,
    ) -> Any:
        """Submit a job and wait for its result; raises ``JobFailedError`` if it failed
        and ``JobTimeoutError`` after ``timeout`` seconds (the job keeps running)."""
        await self._measure_clock()
        with producer_span(name) as span:
            job_id, call = self._core.submit(
                name,
                payload,
                priority,
                routing_key=routing_key,
                max_retries=max_retries,
                description=description,
                result_ttl=result_ttl,
                expires_in=expires_in,
                traceparent=span.traceparent,
            )
            span.submitted([job_id])
            # Beside the submit, like every submit (the wait is what takes the time).
            await self._register([job_id])
            found = await submit_then_wait(self._runner, self._result_waiter(), job_id, call, timeout)
        return found.value()

    async def get_result(
        self, job_id: str, timeout: float | None = None, *, on_progress: ProgressCallback | None = None
    ) -> Any:
        """The job's return value. With ``timeout`` (seconds), wait for it that long and
        raise ``JobTimeoutError`` if it does not come; without, return ``None`` if the job
        has not finished. A failed job raises ``JobFailedError``. ``on_progress`` is
        called with each new ``Progress`` the job reports while this waits."""
        found = await self.get_job_result(job_id)
        if found is None and timeout is not None:
            if on_progress is None:
                found = await self._result_waiter().wait(job_id, timeout)
            else:
                found = await wait_with_progress(self.redis, self._result_waiter(), job_id, timeout, on_progress)
        return None if found is None else found.value()

    async def get_job_result(self, job_id: str) -> JobResult | None:
        """The stored outcome (status, result or error, timings, worker), or ``None``."""
        if not self._core.knows(job_id):
            return None
        return await fetch_result(self.redis, job_id, self.layout)

    def _result_waiter(self) -> ResultWaiter:
        if self._waiter is None:
            self._waiter = ResultWaiter(self.redis, self.layout)
        return self._waiter

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job. A pending or scheduled job is taken out of its queue at once and
        never runs; a running one is asked to stop (an async handler is cancelled, a sync
        one sees ``job.cancel_requested``). Its status ends ``cancelled``, with no retry,
        and result waiters get ``JobCancelledError``. False when the job is unknown or
        already finished."""
        if not self._core.knows(job_id):
            return False
        for _ in range(CANCEL_TRIES):
            seen = await self.redis.get(self.layout.job(job_id))
            call = self._core.cancel(job_id, seen)
            if call is None:
                return False
            followup = self._core.after_cancel(job_id, seen)
            if followup is None:
                outcome = await self._runner.run(call)
            else:
                replies = await self._runner.run_many([call, followup], transaction=True)
                raise_first_error(replies)
                outcome = replies[0]
            if outcome != -1:
                return bool(outcome in (1, 2))
        raise BananasError(f"job {job_id} kept changing; cancellation not applied, try again")

    async def get_job(self, job_id: str) -> Job | None:
        """The job's current record, or ``None`` if there is none (or it expired)."""
        if not self._core.knows(job_id):
            return None
        raw, progress = await self._drive(read_job_and_progress(job_id, self.layout))
        if raw is None:
            return None
        job = Job.from_record(raw, job_id=job_id)
        job.progress = progress
        return job

    async def get_progress(self, job_id: str) -> Progress | None:
        """The job's last reported progress (``job.set_progress``), or None."""
        if not self._core.knows(job_id):
            return None
        return await self._drive(read_progress(job_id, self.layout))  # type: ignore[no-any-return]

    async def queue_stats(self) -> QueueStats:
        """Ready jobs per routing key and priority (every key seen), with per routing key
        its consumers, jobs in flight, pause and whether it is orphaned; parked jobs
        (flagged when no live worker can run them), scheduled, in flight, dead. Four
        round trips at most, whatever the number of keys (docs/OPERATIONS.md)."""
        await self._measure_clock()
        return await self._drive(read_queue_stats(self._core.clock.now(), self.layout))  # type: ignore[no-any-return]

    async def workers(self) -> list[WorkerInfo]:
        """The live workers: each process's announced settings, load and counters. A
        worker that stops leaves at once; one that was killed within 2 x its lease length."""
        return await self._drive(read_workers(self.layout))  # type: ignore[no-any-return]

    async def running(self, limit: int | None = None) -> list[RunningJob]:
        """Jobs in flight now (leased by a worker), oldest lease deadline first."""
        return await self._drive(read_running(limit, self.layout))  # type: ignore[no-any-return]

    async def pause(self, routing_key: str, priority: Priority | str | None = None) -> bool:
        """Stop every worker of the fleet from starting jobs of ``routing_key`` (or only
        its ``priority``) until ``resume``. Producers keep queueing; jobs already running
        finish. Once this returns, no dequeue takes from it. True if it was not paused."""
        await self._measure_clock()
        return await self._drive(control.pause(routing_key, priority, self._core.clock.now(), self.layout))  # type: ignore[no-any-return]

    async def resume(self, routing_key: str, priority: Priority | str | None = None) -> bool:
        """Undo ``pause`` (the same ``priority``, or None for the whole key); wakes its
        workers. True if it was paused."""
        return await self._drive(control.resume(routing_key, priority, self.layout))  # type: ignore[no-any-return]

    async def paused(self) -> list[PausedQueue]:
        """Every paused routing key, or routing key and priority."""
        return await self._drive(read_paused(self.layout))  # type: ignore[no-any-return]

    async def purge(self, routing_key: str, priority: Priority | str | None = None, *, dry_run: bool = False) -> int:
        """Remove the jobs ready on ``routing_key`` (or one priority of it): its ready and
        parked lists, atomically per list (per 2,000 jobs for longer lists). Their
        jobs are marked as ``cancel`` marks a waiting job (status ``cancelled``, result
        waiters get ``JobCancelledError``). Returns how many were removed; with
        ``dry_run``, how many would be, removing nothing. Running jobs are not touched."""
        await self._measure_clock()
        action = control.purge(routing_key, priority, self._core.clock.now(), layout=self.layout, dry_run=dry_run)
        return await self._drive(action)  # type: ignore[no-any-return]

    async def _drive(self, steps: Generator[Any, list[Any], Any]) -> Any:
        """Carry a reader's or action's batches to Redis, one round trip each."""
        try:
            batch = next(steps)
            while True:
                batch = steps.send(await self._send_batch(batch))
        except StopIteration as done:
            return done.value

    async def _send_batch(self, batch: Sequence[Any]) -> list[Any]:
        if not batch:
            return []
        if isinstance(batch[0], Call):
            return await self._runner.run_many(batch)
        if self.layout.cluster:
            # The cluster runner splits raw commands by master, one packed pipeline each
            # (redis-py's cluster pipeline costs several times more per command).
            return raise_first_error(await self._runner.send(batch))
        pipe = self.redis.pipeline(transaction=False)
        for command in batch:
            pipe.execute_command(*command)
        return list(await pipe.execute())

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
