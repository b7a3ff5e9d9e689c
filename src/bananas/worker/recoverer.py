"""Returns jobs whose lease expired (their worker died or hung) to their ready queue.

Every worker runs one; the ``recover`` script re-checks the lease under Redis' lock,
so two recoverers never requeue the same delivery twice. A job that keeps killing its
worker is parked in the dead letters after ``max_recoveries`` (a poison pill), counted
in its record's ``recoveries`` field apart from ordinary failed attempts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from bananas.aio import raise_if_cancelling
from bananas.core import codec
from bananas.core.clock import Clock, format_time, to_datetime
from bananas.core.codec import display_id
from bananas.core.job import Job, JobStatus
from bananas.core.lifecycle import mark_pending
from bananas.core.result import FAILED, result_fields
from bananas.errors import MalformedJobError
from bananas.events import EventKind, JobEvent, Listeners
from bananas.redis import calls
from bananas.redis.backoff import loop_log_level
from bananas.redis.broker import Broker
from bananas.redis.scripts import Call
from bananas.worker.malformed import stub_record
from bananas.worker.outcomes import event_of

log = logging.getLogger("bananas.worker")

BATCH = 200


class Recoverer:
    def __init__(
        self,
        broker: Broker,
        clock: Clock,
        interval: float,
        max_recoveries: int,
        is_mine: Callable[[str], bool],
        result_failure_ttl: int = 0,
        failed_ttl: int = 0,
        dead_letter_cap: int = 0,
        listeners: Listeners | None = None,
        worker_id: str = "",
        routing_keys: Sequence[str] = (),
    ) -> None:
        """``routing_keys``: this worker's own; on Redis Cluster every known routing key's
        lease set is visited too (``Broker.slot_groups``)."""
        self._routing_keys = tuple(routing_keys)
        self._listeners = listeners if listeners is not None else Listeners()
        self._worker_id = worker_id
        self._failed_ttl = failed_ttl
        self._dead_cap = dead_letter_cap
        self._result_ttl = result_failure_ttl
        self._broker = broker
        self._clock = clock
        self.interval = interval
        self._max_recoveries = max_recoveries
        self._is_mine = is_mine
        #: Hand-offs to give up once a poison pill's recovery applied (see ``abandon.lua``).
        self._abandons: dict[str, Call] = {}

    async def recover_once(self) -> int:
        now = self._clock.now()
        now_ms = int(now * 1000)
        groups = await self._broker.slot_groups(self._routing_keys)
        expired = [(i, t) for i, t in await self._broker.expired_leases(groups, now_ms, BATCH) if not self._is_mine(i)]
        if not expired:
            return 0
        records = await self._broker.records([i for i, _ in expired])
        plans = []
        for (job_id, token), raw in zip(expired, records, strict=True):
            try:
                plans.append(self._plan(job_id, token, raw, now, now_ms))
            except Exception:
                # One job this version cannot handle must not stop the recovery of the
                # others in its batch (and in every later pass): skip it, say which.
                log.exception("job %s: planning its recovery failed; skipped", display_id(job_id))
        if not plans:
            return 0
        replies = await self._broker.run_many([call for call, _ in plans])
        done = 0
        handoffs: list[Call] = []
        for (_, event), reply in zip(plans, replies, strict=True):
            if reply == 1:
                done += 1
                if event is not None and self._listeners.wants(event.kind):
                    self._listeners.emit(event)
                if event is not None and event.kind is EventKind.DEAD and event.job_id in self._abandons:
                    handoffs.append(self._abandons[event.job_id])
        self._abandons.clear()
        if handoffs:
            # A poison pill that was a workflow step or held a unique key gives them up.
            await self._broker.run_many(handoffs)
        if held := sum(1 for r in replies if r == 2):
            log.warning("dropped %d expired lease(s) of jobs an original Go worker holds; not queued again", held)
        if done:
            log.info("recovered %d job(s) from expired leases", done)
        return done

    def _plan(
        self, job_id: str, token: str, raw: bytes | None, now: float, now_ms: int
    ) -> tuple[Call, JobEvent | None]:
        """The recovery call of one expired lease, and the event to emit if it applies."""
        if raw is None:
            stub = stub_record(job_id, "record missing", None, now)
            call = calls.recover_to_dead(
                job_id,
                token,
                now_ms,
                stub,
                record_ttl=self._failed_ttl,
                dead_cap=self._dead_cap,
                layout=self._broker.layout,
            )
            return call, None
        try:
            job = Job.from_record(raw, job_id=job_id)
        except MalformedJobError as exc:
            stub = stub_record(job_id, exc.reason, raw, now)
            call = calls.recover_to_dead(
                job_id,
                token,
                now_ms,
                stub,
                record_ttl=self._failed_ttl,
                dead_cap=self._dead_cap,
                layout=self._broker.layout,
            )
            return call, None
        recoveries = job.recoveries + 1
        job.extra["recoveries"] = recoveries
        if recoveries > self._max_recoveries:
            job.status = JobStatus.FAILED
            job.updated_at = to_datetime(now)
            job.error = (
                f"poison pill: the job's worker died or stopped heartbeating {recoveries} times "
                f"(limit {self._max_recoveries}); parked without further delivery"
            )
            job.extra["poison_pill"] = True
            job.extra["failed_at"] = format_time(to_datetime(now))
            fields = result_fields(job, status=FAILED, started=now, finished=now, worker="") if self._result_ttl else ()
            call = calls.recover_to_dead(
                job_id,
                token,
                now_ms,
                job.to_record(),
                self._result_ttl,
                fields,
                record_ttl=self._failed_ttl,
                dead_cap=self._dead_cap,
                layout=self._broker.layout,
            )
            handoff = calls.abandon_job(
                job, format_time(to_datetime(now)), status=FAILED, reason=job.error, layout=self._broker.layout
            )
            if handoff is not None:
                self._abandons[job_id] = handoff
            return call, event_of(EventKind.DEAD, job, self._worker_id, now, error=job.error)
        mark_pending(job, to_datetime(now))
        call = calls.recover_to_ready(job, token, now_ms, codec.dumps(job.to_dict()), layout=self._broker.layout)
        return call, event_of(EventKind.RECOVERED, job, self._worker_id, now)

    async def run(self) -> None:
        while True:
            raise_if_cancelling()
            try:
                while await self.recover_once() >= BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = loop_log_level(exc)
                log.log(level, "lease recovery failed: %s", exc)
            await asyncio.sleep(self.interval)
