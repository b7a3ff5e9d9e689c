"""Every transition of a leased job, in one place.

Each method changes the record (``core/lifecycle``), builds the script call
(``redis/calls``), writes it through the ``Writer`` and, once Redis has replied, emits
one ``JobEvent``. A transition Redis refused (the lease was lost, a late ack) is
emitted with ``applied=False`` and changes nothing. Logging, metrics and tracing are
listeners of these events (``bananas.events``), not code in here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bananas.config import WorkerSettings
from bananas.core import codec
from bananas.core.clock import Clock, format_time, to_datetime
from bananas.core.codec import display_id
from bananas.core.job import TRACEPARENT, Job, JobStatus
from bananas.core.lifecycle import (
    FailureDecision,
    Verdict,
    apply_failure,
    mark_cancelled,
    mark_completed,
    mark_expired,
    mark_given_back,
    mark_started,
)
from bananas.core.result import CANCELLED, COMPLETED, EXPIRED, FAILED, result_fields
from bananas.core.selection import Source
from bananas.core.workflow import step_link, unique_key_of, workflow_result_ttl
from bananas.events import EventKind, JobEvent, Listeners
from bananas.redis import calls
from bananas.redis.scripts import Call, ScriptName
from bananas.worker.malformed import MALFORMED_JOB_NAME, stub_record
from bananas.worker.progress import ProgressReporter
from bananas.worker.writer import Deferred, Writer

log = logging.getLogger("bananas.worker")


@dataclass(slots=True)
class Delivery:
    """One leased delivery of a job to this worker."""

    job_id: str
    token: str
    source: Source
    job: Job | None = None
    #: Unix seconds the attempt began (None until it has).
    started: float | None = None
    #: An operator asked to cancel the job while this worker holds it.
    cancel_requested: bool = False
    #: An async handler of this delivery is running (cancelling its task stops it).
    in_async_handler: bool = False
    #: An outcome was written for this delivery (or Redis refused one): nothing is left
    #: to give back at shutdown.
    settled: bool = False


class Outcomes:
    def __init__(
        self, settings: WorkerSettings, writer: Writer, clock: Clock, worker_id: str, listeners: Listeners
    ) -> None:
        self._settings = settings
        self._writer = writer
        #: The key names of the worker's server (redis/keys.py).
        self.layout = writer.layout
        self.clock = clock
        self._worker_id = worker_id
        self.listeners = listeners

    # -- the attempt -----------------------------------------------------------------

    def start(self, delivery: Delivery, job: Job, now: float) -> None:
        """Mark the attempt begun. Not awaited: the handler starts at once, and the
        writer keeps the start before the outcome."""
        mark_started(job, to_datetime(now))
        delivery.started = now
        job_id, token, layout = job.id, delivery.token, self._writer.layout
        # Always answered, so a failed start is said (with its job id).
        self._writer.post(
            Deferred(ScriptName.START, job_id, lambda: calls.start(job_id, token, job.to_record(), layout=layout)),
            lambda reply, exc: self._started(reply, exc, job, now),
        )

    async def succeed(self, delivery: Delivery, job: Job, encoded_result: bytes) -> bool:
        finished = self.clock.now()
        started = delivery.started if delivery.started is not None else finished
        finished_dt = to_datetime(finished)
        mark_completed(job, finished_dt)
        # The finish time is written twice (record and result): formatted once.
        finished_text = format_time(finished_dt)
        job._updated_text = (finished_dt, finished_text)
        result_ttl = job_result_ttl(job, self._settings.result_ttl)
        fields = (
            result_fields(
                job, status=COMPLETED, started=started, finished=finished,
                worker=self._worker_id, encoded_result=encoded_result, finished_text=finished_text,
            )
            if result_ttl
            else ()
        )  # fmt: skip
        record = job.to_record()
        call = self._handoff(
            job, delivery.token, record, self._settings.completed_ttl, COMPLETED, -1, result_ttl, fields,
            encoded_result, finished,
        ) or calls.ack(
            job.id, delivery.token, record, self._settings.completed_ttl, result_ttl, fields, layout=self._writer.layout
        )  # fmt: skip
        applied = await self._write(delivery, call)
        if not applied:
            log.warning("job %s finished after its lease was lost; its outcome was discarded", job.id)
        self._emit(EventKind.SUCCEEDED, job, finished, applied=applied, duration_s=finished - started)
        return applied

    async def fail(self, delivery: Delivery, job: Job, error: str, decision: FailureDecision) -> bool:
        """The attempt failed: retry with backoff, or the dead letters."""
        now = self.clock.now()
        started = delivery.started if delivery.started is not None else now
        apply_failure(job, decision, error, now, worker=self._worker_id)
        record = job.to_record()
        call: Call
        if decision.verdict is Verdict.RETRY:
            assert decision.due is not None
            call = calls.retry(job.id, delivery.token, record, decision.due, layout=self._writer.layout)
            kind = EventKind.RETRYING
        else:
            result_ttl = job_result_ttl(job, self._settings.result_failure_ttl)
            fields = (
                result_fields(job, status=FAILED, started=started, finished=now, worker=self._worker_id)
                if result_ttl
                else ()
            )
            call = self._handoff(
                job, delivery.token, record, self._settings.failed_ttl, FAILED, self._settings.dead_letter_cap,
                result_ttl, fields, None, now,
            ) or calls.bury(
                job.id, delivery.token, record, self._settings.failed_ttl,
                self._settings.dead_letter_cap, result_ttl, fields, layout=self._writer.layout,
            )  # fmt: skip
            kind = EventKind.DEAD
        applied = await self._write(delivery, call)
        if not applied:
            log.warning("job %s failed after its lease was lost; its outcome was discarded", job.id)
        self._emit(kind, job, now, applied=applied, duration_s=now - started, error=error, retry_at=decision.due)
        return applied

    async def cancel(self, delivery: Delivery, job: Job) -> bool:
        """An operator cancelled the job while it ran: final, no retry."""
        now = self.clock.now()
        started = delivery.started if delivery.started is not None else now
        mark_cancelled(job, to_datetime(now), running=delivery.started is not None)
        applied = await self._finish(delivery, job, CANCELLED, now, started)
        self._emit(EventKind.CANCELLED, job, now, applied=applied, duration_s=now - started, error=job.error)
        return applied

    async def expire(self, delivery: Delivery, job: Job) -> bool:
        """The job was not started before its ``expires_at``: it never runs."""
        now = self.clock.now()
        mark_expired(job, to_datetime(now))
        applied = await self._finish(delivery, job, EXPIRED, now, now)
        self._emit(EventKind.EXPIRED, job, now, applied=applied, error=job.error)
        return applied

    async def _finish(self, delivery: Delivery, job: Job, status: str, now: float, started: float) -> bool:
        """End the lease with a final record and a result that says ``status``."""
        result_ttl = job_result_ttl(job, self._settings.result_failure_ttl)
        fields = (
            result_fields(job, status=status, started=started, finished=now, worker=self._worker_id)
            if result_ttl
            else ()
        )
        record = job.to_record()
        call = self._handoff(
            job, delivery.token, record, self._settings.failed_ttl, status, -1, result_ttl, fields, None, now
        ) or calls.ack(
            job.id, delivery.token, record, self._settings.failed_ttl, result_ttl, fields, layout=self._writer.layout
        )
        return await self._write(delivery, call)

    def _handoff(
        self,
        job: Job,
        token: str,
        record: bytes,
        record_ttl: int,
        status: str,
        dead_cap: int,
        result_ttl: int,
        fields: Sequence[str | bytes],
        encoded_result: bytes | None,
        now: float,
    ) -> Call | None:
        """The ``finish`` call of a job that carries hand-offs (a workflow step, a unique
        key), or None for a plain job (ack/bury). docs/WORKFLOWS.md has the rules."""
        link = step_link(job)
        unique_key = unique_key_of(job)
        if link is None and unique_key is None:
            return None
        step = None
        if link is not None:
            step = calls.StepEnd(
                link.workflow_id, link.stage, link.index, link.size, link.is_group, link.allow_failure,
                [(n.id, n.routing_key, n.priority) for n in link.next],
                encoded_result if encoded_result is not None else b"null",
                (job.error or status).split("\n", 1)[0],
                workflow_result_ttl(job),
                format_time(to_datetime(now)),
            )  # fmt: skip
        return calls.finish(
            job.id, token, record, record_ttl, status, dead_cap=dead_cap, result_ttl=result_ttl, result=fields,
            unique_key=unique_key, step=step, layout=self._writer.layout,
        )  # fmt: skip

    def progress_reporter(self, delivery: Delivery) -> ProgressReporter:
        """Where the job's ``set_progress`` reports go (throttled, through the writer)."""
        loop = asyncio.get_running_loop()
        return ProgressReporter(loop, self._writer, self.clock, delivery.job_id, delivery.token)

    # -- handing the job to someone else -------------------------------------------------

    async def park(self, delivery: Delivery, job: Job, reason: str) -> bool:
        """Hand the job on to a worker that can run it, without spending an attempt."""
        now = self.clock.now()
        job.extra["parked"] = {"reason": reason, "by": self._worker_id, "at": format_time(to_datetime(now))}
        job.status = JobStatus.PENDING
        applied = await self._write(
            delivery, calls.park(job, delivery.token, job.to_record(), layout=self._writer.layout)
        )
        if not applied:
            log.warning("job %s could not be handed on: its lease was lost", job.id)
        self._emit(EventKind.PARKED, job, now, applied=applied, error=reason)
        return applied

    async def reroute(self, delivery: Delivery, job: Job, found_in: str) -> bool:
        """A record naming another routing key than the list it was taken from (e.g. a
        "gpu" record the original SDKs pushed to a legacy list) goes to its own routing
        key's ready list, untouched and unrun: it runs only where that key is consumed."""
        reason = f"names routing key {job.routing_key!r}; moved there from {found_in}"
        log.info("job %s %s", job.id, reason)
        applied = await self._write(delivery, calls.reroute(job, delivery.token, layout=self._writer.layout))
        if not applied:
            log.warning("job %s could not be moved to its routing key: its lease was lost", job.id)
        self._emit(EventKind.PARKED, job, self.clock.now(), applied=applied, error=reason)
        return applied

    def give_back_call(self, delivery: Delivery) -> Call | None:
        """The call that hands an unfinished job back to its ready list at shutdown; the
        attempt it began is not counted. None when there is nothing to give back."""
        job = delivery.job
        if job is None or delivery.settled:
            return None
        mark_given_back(job, to_datetime(self.clock.now()))
        return calls.release(job, delivery.token, job.to_record(), layout=self._writer.layout)

    def given_back(self, delivery: Delivery, applied: bool) -> None:
        delivery.settled = True
        if delivery.job is not None:
            self._emit(EventKind.GIVEN_BACK, delivery.job, self.clock.now(), applied=applied)

    async def give_back(self, delivery: Delivery) -> bool:
        """Give one job back now (it is to run alone and another one already does)."""
        call = self.give_back_call(delivery)
        if call is None:
            return False
        applied = await self._write(delivery, call)
        self.given_back(delivery, applied)
        return applied

    async def bury_unreadable(self, delivery: Delivery, reason: str, raw: bytes | None) -> bool:
        """A record that cannot be read as a job goes to the dead letters, kept verbatim."""
        now = self.clock.now()
        log.error("job %s has a malformed record (%s); moved to dead letters", delivery.job_id, reason)
        stub = stub_record(delivery.job_id, reason, raw, now)
        call = calls.bury(
            delivery.job_id,
            delivery.token,
            stub,
            self._settings.failed_ttl,
            self._settings.dead_letter_cap,
            layout=self._writer.layout,
        )
        applied = await self._write(delivery, call)
        if self.listeners.wants(EventKind.DEAD):
            self.listeners.emit(
                JobEvent(
                    EventKind.DEAD, delivery.job_id, MALFORMED_JOB_NAME, delivery.source.ref.routing_key,
                    delivery.source.ref.priority.value, 0, self._worker_id, now,
                    error=f"malformed job record: {reason}", applied=applied,
                )
            )  # fmt: skip
        return applied

    async def drop(self, delivery: Delivery, why: str) -> bool:
        """End a delivery that must not run (its record is already final: a duplicate
        entry in a ready list). The record is left as it is, so no event is emitted."""
        where = calls.source_key(delivery.source, self._writer.layout)
        log.warning(
            "job %s dropped from %s: %s (a duplicate entry; not run again)", display_id(delivery.job_id), where, why
        )
        return await self._write(delivery, calls.drop(delivery.job_id, delivery.token, layout=self._writer.layout))

    async def drop_if_held(self, delivery: Delivery) -> bool:
        """End the delivery, unrun, when an original Go worker is running the same job
        (its id is in ``bananas:queue:processing``); False, and nothing changed, if not."""
        if (
            await self._writer.send(calls.drop_if_held(delivery.job_id, delivery.token, layout=self._writer.layout))
            != 1
        ):
            return False
        delivery.settled = True
        log.warning(
            "job %s dropped from %s: an original Go worker is running it (a duplicate entry; not run here)",
            display_id(delivery.job_id),
            calls.source_key(delivery.source, self._writer.layout),
        )
        return True

    # -- plumbing ------------------------------------------------------------------------

    async def _write(self, delivery: Delivery, call: Call) -> bool:
        reply = await self._writer.send(call)
        delivery.settled = True
        return bool(reply == 1)

    def _emit(
        self,
        kind: EventKind,
        job: Job,
        at: float,
        *,
        applied: bool = True,
        duration_s: float | None = None,
        error: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        if self.listeners.wants(kind):
            self.listeners.emit(event_of(kind, job, self._worker_id, at, applied, duration_s, error, retry_at))

    def _started(self, reply: Any, exc: BaseException | None, job: Job, now: float) -> None:
        if exc is not None:
            log.warning("job %s: recording its start failed (%s); its outcome still follows", job.id, exc)
            return
        if self.listeners.wants(EventKind.STARTED):
            self._emit(EventKind.STARTED, job, now, applied=reply == 1)


def event_of(
    kind: EventKind,
    job: Job,
    worker_id: str,
    at: float,
    applied: bool = True,
    duration_s: float | None = None,
    error: str | None = None,
    retry_at: float | None = None,
) -> JobEvent:
    return JobEvent(
        kind, job.id, job.name, job.routing_key, job.priority.value, job.attempts, worker_id, at,
        duration_s=duration_s, error=error, retry_at=retry_at, applied=applied, traceparent=_traceparent(job),
    )  # fmt: skip


def _traceparent(job: Job) -> str | None:
    """The submitter's trace context (bananas.tracing), when the record carries a sane one."""
    value = job.extra.get(TRACEPARENT)
    return value if isinstance(value, str) and len(value) <= 256 else None


def job_result_ttl(job: Job, default: int) -> int:
    """A job may carry its own ``result_ttl`` (seconds), set at submit time."""
    own = job.result_ttl  # None when absent or out of range (a foreign producer's junk)
    return default if own is None else own


def encode_result(value: Any) -> bytes:
    return codec.encode_payload(value, max_bytes=None)
