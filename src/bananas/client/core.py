"""The I/O-free half of both clients: validation and the script calls to make.

``Client`` and ``AsyncClient`` only add the round trip, so they cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bananas.core import codec
from bananas.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from bananas.core.job import DEFAULT_MAX_RETRIES, Job, JobStatus, new_job
from bananas.core.priority import Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY, validate_routing_key
from bananas.errors import PayloadError, ValidationError
from bananas.redis import calls
from bananas.redis.scripts import Call

#: Jobs per script call in ``submit_many``; larger batches are split, then sent together.
SUBMIT_MANY_CHUNK = 1000
#: Longest delay accepted by ``schedule_job`` (ten years): anything above is a bug.
MAX_DELAY_SECONDS = 10 * 366 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ClientCore:
    max_payload_bytes: int | None = codec.DEFAULT_MAX_PAYLOAD_BYTES
    clock: Clock = SYSTEM_CLOCK

    def __post_init__(self) -> None:
        limit = self.max_payload_bytes
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValidationError(f"max_payload_bytes must be a whole number of bytes >= 1 (or None), got {limit!r}")

    def build(
        self,
        name: str,
        payload: Any,
        priority: Priority | str,
        routing_key: str,
        max_retries: int,
        description: str | None,
    ) -> Job:
        return new_job(
            name,
            payload,
            priority,
            routing_key,
            now=to_datetime(self.clock.now()),
            max_retries=max_retries,
            description=description,
            max_payload_bytes=self.max_payload_bytes,
        )

    def submit(
        self,
        name: str,
        payload: Any,
        priority: Priority | str = Priority.NORMAL,
        *,
        routing_key: str = DEFAULT_ROUTING_KEY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
        result_ttl: int | None = None,
    ) -> tuple[str, Call]:
        job = self.build(name, payload, priority, routing_key, max_retries, description)
        _set_result_ttl(job, result_ttl)
        return job.id, calls.submit(job, job.to_record())

    def submit_many(
        self,
        name: str,
        payloads: Sequence[Any],
        priority: Priority | str = Priority.NORMAL,
        *,
        routing_key: str = DEFAULT_ROUTING_KEY,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> tuple[list[str], list[Call]]:
        """Validate every payload before anything is sent: one bad payload, no job written."""
        if isinstance(payloads, str | bytes | dict) or not isinstance(payloads, Sequence):
            raise ValidationError("payloads must be a list of JSON values, one per job")
        # Checked once up front, so an error names the argument rather than a payload.
        Priority.parse(priority)
        validate_routing_key(routing_key)
        jobs: list[Job] = []
        for index, payload in enumerate(payloads):
            try:
                jobs.append(self.build(name, payload, priority, routing_key, max_retries, None))
            except PayloadError as exc:
                raise PayloadError(f"payloads[{index}]: {exc}") from None
        batch: list[Call] = []
        for start in range(0, len(jobs), SUBMIT_MANY_CHUNK):
            chunk = jobs[start : start + SUBMIT_MANY_CHUNK]
            batch.append(calls.submit_many(chunk, [j.to_record() for j in chunk]))
        return [j.id for j in jobs], batch

    def schedule(
        self,
        name: str,
        payload: Any,
        *,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: Priority | str = Priority.NORMAL,
        routing_key: str = DEFAULT_ROUTING_KEY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
        result_ttl: int | None = None,
    ) -> tuple[str, Call]:
        due = self.due_time(run_at, delay)
        job = self.build(name, payload, priority, routing_key, max_retries, description)
        _set_result_ttl(job, result_ttl)
        job.status = JobStatus.SCHEDULED
        job.scheduled_for = to_datetime(due)
        return job.id, calls.schedule(job, job.to_record(), due)

    def due_time(self, run_at: datetime | None, delay: float | timedelta | None) -> float:
        if run_at is not None and delay is not None:
            raise ValidationError("give either run_at or delay, not both")
        now = self.clock.now()
        if run_at is not None:
            if not isinstance(run_at, datetime):
                raise ValidationError(f"run_at must be a datetime, got {type(run_at).__name__}")
            if run_at.tzinfo is None or run_at.utcoffset() is None:
                raise ValidationError("run_at must be timezone-aware (e.g. datetime.now(UTC))")
            due = run_at.timestamp()
            if due - now > MAX_DELAY_SECONDS:
                raise ValidationError(f"run_at {run_at.isoformat()} is more than ten years away")
            return due
        if delay is None:
            raise ValidationError("schedule_job needs run_at or delay")
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValidationError(f"delay must be seconds or a timedelta, got {type(delay).__name__}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValidationError(f"delay must be a finite number of seconds >= 0, got {seconds!r}")
        if seconds > MAX_DELAY_SECONDS:
            raise ValidationError(f"delay of {seconds} seconds is more than ten years")
        return now + float(seconds)


def _set_result_ttl(job: Job, result_ttl: int | None) -> None:
    """Per-job result lifetime, carried in the record's ``result_ttl`` field."""
    if result_ttl is None:
        return
    if isinstance(result_ttl, bool) or not isinstance(result_ttl, int) or result_ttl < 0:
        raise ValidationError(f"result_ttl must be a whole number of seconds >= 0, got {result_ttl!r}")
    job.extra["result_ttl"] = result_ttl
