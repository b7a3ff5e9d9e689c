"""Handles one delivery: read the record, mark it started, run the handler, and record
the outcome (completed, retry with backoff, or dead letters)."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from dataclasses import dataclass

from bananas.config import WorkerSettings
from bananas.core import codec
from bananas.core.clock import Clock, format_time, to_datetime
from bananas.core.job import Job, JobStatus
from bananas.core.lifecycle import (
    FailureDecision,
    Verdict,
    apply_failure,
    decide_failure,
    mark_completed,
    mark_pending,
    mark_started,
)
from bananas.core.limits import FleetLimits
from bananas.core.result import COMPLETED, FAILED, result_fields
from bananas.core.selection import Source
from bananas.errors import MalformedJobError, PayloadError
from bananas.redis import calls, keys
from bananas.redis.scripts import ScriptName
from bananas.worker.executor import Executor, JobTimeoutExceeded
from bananas.worker.malformed import stub_record
from bananas.worker.registry import Handler, Registry
from bananas.worker.signals import Fail, Retry
from bananas.worker.writer import Deferred, Writer

log = logging.getLogger("bananas.worker")


class GiveBack(Exception):
    """Raised by ``run_alone`` when the job should go back to its queue untouched."""


@dataclass(slots=True)
class Delivery:
    job_id: str
    token: str
    source: Source
    job: Job | None = None


class Processor:
    def __init__(
        self,
        registry: Registry,
        settings: WorkerSettings,
        executor: Executor,
        writer: Writer,
        clock: Clock,
        worker_id: str = "",
        *,
        handled: frozenset[str] | None = None,
        limits: Callable[[], FleetLimits] | None = None,
        run_alone: Callable[[str], AsyncContextManager[None]] | None = None,
    ) -> None:
        self._run_alone = run_alone
        # A bystander can share at most this many of a pill's crashes, which stays below
        # the limit that parks a job (JOB_MAX_RECOVERIES), however low it is set.
        self._alone_after = max(1, min(2, settings.max_recoveries))
        self._worker_id = worker_id
        self._handled = handled
        self._limits = limits
        self._registry = registry
        self._settings = settings
        self._executor = executor
        self._writer = writer
        self._clock = clock

    async def process(self, delivery: Delivery, raw: bytes | None) -> None:
        job_id, token = delivery.job_id, delivery.token
        now = self._clock.now()
        try:
            if raw is None:
                raise MalformedJobError("record missing (the id in the queue points to no record)", job_id)
            job = Job.from_record(raw, job_id=job_id, default_max_retries=self._settings.max_retries)
        except MalformedJobError as exc:
            log.error("job %s has a malformed record (%s); moved to dead letters", job_id, exc.reason)
            stub = stub_record(job_id, exc.reason, raw, now)
            await self._writer.send(calls.bury(job_id, token, stub, self._settings.failed_ttl, self._dead_cap))
            return
        delivery.job = job
        if job.routing_key != delivery.source.ref.routing_key:
            # E.g. a "gpu" record the original SDKs pushed to a legacy list: it runs only
            # where its routing key is consumed, so it moves there instead of running here.
            log.info(
                "job %s names routing key %r; moved there from %s",
                job_id,
                job.routing_key,
                keys.queue(delivery.source.ref),
            )
            if not await self._writer.send(calls.reroute(job, token)):
                log.warning("job %s could not be moved to its routing key: its lease was lost", job_id)
            return
        handler = self._registry.get(job.name) if self._handles(job.name) else None
        reason = self._park_reason(job, delivery.source, handler is None)
        if reason is not None:
            await self._park(job, token, reason, now)
            return
        if self._run_alone is not None and _recoveries(job) >= self._alone_after:
            # This job's worker died under it more than once: run it with nothing beside
            # it, so if it is a poison pill, jobs next to it are not killed (and counted)
            # with it again. One loss is common to every job in flight at a crash, so
            # isolating from the first one would run a dead worker's whole batch one by one.
            try:
                async with self._run_alone(job_id):
                    await self._run(job, token, handler, self._clock.now())
            except GiveBack:
                mark_pending(job, to_datetime(self._clock.now()))
                await self._writer.send(calls.release(job, token, job.to_record()))
            return
        await self._run(job, token, handler, now)

    async def _run(self, job: Job, token: str, handler: Handler | None, now: float) -> None:
        job_id = job.id
        mark_started(job, to_datetime(now))
        started = now
        if handler is None:
            known = ", ".join(self._registry.names) or "none"
            error = f"no handler registered for job name {job.name!r} on this worker (known: {known})"
            log.error("job %s: %s", job_id, error)
            await self._fail(job, token, error, FailureDecision(Verdict.DEAD), now, started)
            return
        # Not awaited: the handler starts at once; the writer keeps start before the outcome.
        self._writer.send(Deferred(ScriptName.START, job_id, lambda: calls.start(job_id, token, job.to_record())))
        timeout = _job_timeout(job) or handler.timeout or self._settings.job_timeout
        try:
            result = await self._executor.call(handler, job, timeout)
        except asyncio.CancelledError:
            raise
        except Retry as signal:
            now = self._clock.now()
            decision = decide_failure(job, now, self._settings.retry_policy, retry_in=signal.delay)
            await self._fail(job, token, f"Retry: {signal.reason}", decision, now, started)
        except Fail as signal:
            now = self._clock.now()
            await self._fail(job, token, f"Fail: {signal.reason}", FailureDecision(Verdict.DEAD), now, started)
        except Exception as exc:
            now = self._clock.now()
            error = _describe(exc)
            decision = decide_failure(job, now, self._settings.retry_policy)
            log.warning("job %s (%s) attempt %d failed: %s", job_id, job.name, job.attempts, error.splitlines()[0])
            await self._fail(job, token, error, decision, now, started)
        else:
            finished = self._clock.now()
            try:
                encoded = codec.encode_payload(result, max_bytes=None)
            except PayloadError as exc:
                error = f"ResultError: the handler's return value cannot be stored as JSON ({exc})"
                await self._fail(job, token, error, FailureDecision(Verdict.DEAD), finished, started)
                return
            mark_completed(job, to_datetime(finished))
            result_ttl = self._result_ttl(job, self._settings.result_ttl)
            fields = (
                result_fields(
                    job,
                    status=COMPLETED,
                    started=started,
                    finished=finished,
                    worker=self._worker_id,
                    encoded_result=encoded,
                )
                if result_ttl
                else ()
            )
            accepted = await self._writer.send(
                calls.ack(job_id, token, job.to_record(), self._settings.completed_ttl, result_ttl, fields)
            )
            if not accepted:
                log.warning("job %s finished after its lease was lost; its outcome was discarded", job_id)

    async def _fail(
        self, job: Job, token: str, error: str, decision: FailureDecision, now: float, started: float
    ) -> None:
        apply_failure(job, decision, error, now, worker=self._worker_id)
        record = job.to_record()
        if decision.verdict is Verdict.RETRY:
            assert decision.due is not None
            call = calls.retry(job.id, token, record, decision.due)
        else:
            result_ttl = self._result_ttl(job, self._settings.result_failure_ttl)
            fields = (
                result_fields(job, status=FAILED, started=started, finished=now, worker=self._worker_id)
                if result_ttl
                else ()
            )
            call = calls.bury(job.id, token, record, self._settings.failed_ttl, self._dead_cap, result_ttl, fields)
        if not await self._writer.send(call):
            log.warning("job %s failed after its lease was lost; its outcome was discarded", job.id)

    def _handles(self, name: str) -> bool:
        return self._handled is None or name in self._handled

    def _park_reason(self, job: Job, source: Source, no_handler: bool) -> str | None:
        """Why this worker should hand the job on instead of running it, if it should."""
        if no_handler:
            pool = ",".join(self._settings.routing_keys)
            if job.name in self._registry:
                return f"{job.name!r} is not among this worker's job types (routing keys {pool!r})"
            if self._settings.unknown_jobs == "park":
                return f"no handler for {job.name!r} on the worker pool of routing keys {pool!r}"
        limits = self._limits() if self._limits is not None else None
        # A rate-limited name is run only from its own list, where dequeue applies the rate.
        if limits is not None and job.name in limits.job_rate and source.job_name is None:
            return f"job name {job.name!r} is rate limited ({limits.job_rate[job.name]})"
        return None

    async def _park(self, job: Job, token: str, reason: str, now: float) -> None:
        job.extra["parked"] = {"reason": reason, "by": self._worker_id, "at": format_time(to_datetime(now))}
        job.status = JobStatus.PENDING
        log.info("job %s (%s) handed on: %s", job.id, job.name, reason)
        if not await self._writer.send(calls.park(job, token, job.to_record())):
            log.warning("job %s could not be handed on: its lease was lost", job.id)

    @staticmethod
    def _result_ttl(job: Job, default: int) -> int:
        """A job may carry its own ``result_ttl`` (seconds), set at submit time."""
        own = job.extra.get("result_ttl")
        return int(own) if isinstance(own, int) and not isinstance(own, bool) and own >= 0 else default

    @property
    def _dead_cap(self) -> int:
        return self._settings.dead_letter_cap


def _describe(exc: BaseException) -> str:
    """``Type: message`` on the first line, then the traceback."""
    if isinstance(exc, JobTimeoutExceeded):
        return f"TimeoutError: {exc}"
    head = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc))
    return f"{head}\n{tb}"


def _job_timeout(job: Job) -> float | None:
    """A record may carry its own ``timeout`` (seconds); anything but a positive number is ignored."""
    value = job.extra.get("timeout")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    return None


def _recoveries(job: Job) -> int:
    value = job.extra.get("recoveries")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
