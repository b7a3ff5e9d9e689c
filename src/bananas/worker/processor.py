"""Handles one delivery: read the record, decide whether this worker runs it, run the
handler, and hand the outcome to ``Outcomes`` (which writes it and emits the event)."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager

from bananas.config import WorkerSettings
from bananas.core.job import FINAL_STATUSES, Job, record_status
from bananas.core.lifecycle import FailureDecision, Verdict, decide_failure, is_expired
from bananas.core.limits import FleetLimits
from bananas.core.selection import Source
from bananas.errors import MalformedJobError, PayloadError
from bananas.worker.executor import Executor, JobTimeoutExceeded
from bananas.worker.outcomes import Delivery, Outcomes, encode_result
from bananas.worker.registry import Handler, Registry
from bananas.worker.signals import Fail, Retry

log = logging.getLogger("bananas.worker")

__all__ = ["Delivery", "GiveBack", "Processor"]


class GiveBack(Exception):
    """Raised by ``run_alone`` when the job should go back to its queue untouched."""


class Processor:
    def __init__(
        self,
        registry: Registry,
        settings: WorkerSettings,
        executor: Executor,
        outcomes: Outcomes,
        *,
        handled: frozenset[str] | None = None,
        limits: Callable[[], FleetLimits] | None = None,
        run_alone: Callable[[str], AsyncContextManager[None]] | None = None,
    ) -> None:
        self._run_alone = run_alone
        # A bystander can share at most this many of a pill's crashes, which stays below
        # the limit that parks a job (JOB_MAX_RECOVERIES), however low it is set.
        self._alone_after = max(1, min(2, settings.max_recoveries))
        self._handled = handled
        self._limits = limits
        self._registry = registry
        self._settings = settings
        self._executor = executor
        self._outcomes = outcomes
        self._clock = outcomes.clock

    async def process(self, delivery: Delivery, raw: bytes | None) -> None:
        try:
            if raw is None:
                raise MalformedJobError("record missing (the id in the queue points to no record)", delivery.job_id)
            job = Job.from_record(raw, job_id=delivery.job_id, default_max_retries=self._settings.max_retries)
        except MalformedJobError as exc:
            status = record_status(raw)
            if status in FINAL_STATUSES:  # a final status this version does not know
                await self._outcomes.drop(delivery, f"its record is already {status}")
                return
            await self._outcomes.bury_unreadable(delivery, exc.reason, raw)
            return
        if job.status.value in FINAL_STATUSES:
            # Delivery is idempotent: an id found in a ready list after its job finished
            # (pushed twice, or put back by a foreign tool) is not run again.
            await self._outcomes.drop(delivery, f"its record is already {job.status.value}")
            return
        delivery.job = job
        if self._may_be_held(delivery.source) and await self._outcomes.drop_if_held(delivery):
            return
        if job.routing_key != delivery.source.ref.routing_key:
            # E.g. a "gpu" record the original SDKs pushed to a legacy list: it runs only
            # where its routing key is consumed, so it moves there instead of running here.
            await self._outcomes.reroute(delivery, job, self._outcomes.layout.ref_queue(delivery.source.ref))
            return
        handler = self._registry.get(job.name) if self._handles(job.name) else None
        reason = self._park_reason(job, delivery.source, handler is None)
        if reason is not None:
            await self._outcomes.park(delivery, job, reason)
            return
        if is_expired(job, self._clock.now()):
            await self._outcomes.expire(delivery, job)
            return
        if delivery.cancel_requested:
            await self._outcomes.cancel(delivery, job)
            return
        if self._run_alone is not None and job.recoveries >= self._alone_after:
            # This job's worker died under it more than once: run it with nothing beside
            # it, so if it is a poison pill, jobs next to it are not killed (and counted)
            # with it again. One loss is common to every job in flight at a crash, so
            # isolating from the first one would run a dead worker's whole batch one by one.
            try:
                async with self._run_alone(delivery.job_id):
                    await self._run(delivery, job, handler)
            except GiveBack:
                await self._outcomes.give_back(delivery)
            return
        await self._run(delivery, job, handler)

    async def _run(self, delivery: Delivery, job: Job, handler: Handler | None) -> None:
        outcomes = self._outcomes
        outcomes.start(delivery, job, self._clock.now())
        if handler is None:
            known = ", ".join(self._registry.names) or "none"
            error = f"no handler registered for job name {job.name!r} on this worker (known: {known})"
            log.error("job %s: %s", job.id, error)
            await outcomes.fail(delivery, job, error, FailureDecision(Verdict.DEAD))
            return
        timeout = job.timeout or handler.timeout or self._settings.job_timeout
        delivery.in_async_handler = handler.is_async
        reporter = outcomes.progress_reporter(delivery)
        job._progress_sink = reporter
        try:
            try:
                result = await self._executor.call(handler, job, timeout)
            finally:
                reporter.flush()
        except asyncio.CancelledError:
            delivery.in_async_handler = False
            task = asyncio.current_task()
            if not delivery.cancel_requested or task is None:
                raise
            # Cancelled on an operator's request (not a shutdown): record it and carry on.
            task.uncancel()
            await outcomes.cancel(delivery, job)
            return
        except Retry as signal:
            delivery.in_async_handler = False
            if delivery.cancel_requested:
                await outcomes.cancel(delivery, job)
                return
            decision = decide_failure(job, self._clock.now(), self._settings.retry_policy, retry_in=signal.delay)
            await outcomes.fail(delivery, job, f"Retry: {signal.reason}", decision)
        except Fail as signal:
            delivery.in_async_handler = False
            if delivery.cancel_requested:
                await outcomes.cancel(delivery, job)
                return
            await outcomes.fail(delivery, job, f"Fail: {signal.reason}", FailureDecision(Verdict.DEAD))
        except Exception as exc:
            delivery.in_async_handler = False
            if delivery.cancel_requested:
                await outcomes.cancel(delivery, job)
                return
            decision = decide_failure(job, self._clock.now(), self._settings.retry_policy)
            await outcomes.fail(delivery, job, _describe(exc), decision)
        else:
            delivery.in_async_handler = False
            if delivery.cancel_requested:
                # A sync handler cannot be stopped; what it returned after the request
                # does not count: the job is cancelled, as the operator asked.
                await outcomes.cancel(delivery, job)
                return
            try:
                encoded = encode_result(result)
            except PayloadError as exc:
                error = f"ResultError: the handler's return value cannot be stored as JSON ({exc})"
                await outcomes.fail(delivery, job, error, FailureDecision(Verdict.DEAD))
                return
            await outcomes.succeed(delivery, job, encoded)

    @staticmethod
    def _may_be_held(source: Source) -> bool:
        """Whether a job from ``source`` may be one an original Go worker runs too: those
        read the legacy lists only, where the original Go scheduler (no claim) can push a
        job a second time. One extra call, only for jobs from a legacy list."""
        return source.ref.legacy

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


def _describe(exc: BaseException) -> str:
    """``Type: message`` on the first line, then the traceback."""
    if isinstance(exc, JobTimeoutExceeded):
        return f"TimeoutError: {exc}"
    head = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc))
    return f"{head}\n{tb}"
