"""``Schedule``: one periodic job, validated when it is defined (in code or in a file).

Every problem is reported when the schedule is defined, as a ``ScheduleError`` that
names the schedule, so a scheduler never starts with a schedule it cannot run.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bananas.core import codec
from bananas.core.clock import format_time, to_datetime
from bananas.core.job import DEFAULT_MAX_RETRIES, Job, new_job
from bananas.core.priority import Priority
from bananas.core.routing import DEFAULT_ROUTING_KEY
from bananas.errors import ValidationError
from bananas.redis.keys import ID_ROUTE_SEPARATOR
from bananas.scheduler.cron import CronError, CronSpec

#: A schedule id is embedded in a Redis key name, so it follows a narrow rule.
_SCHEDULE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
SCHEDULE_ID_RULE = "1 to 128 characters of A-Z a-z 0-9 _ . -"

#: Seconds a tick may be late and still run normally; older ticks are "missed".
DEFAULT_GRACE = 60.0

#: Job ids of scheduled runs are derived from (schedule id, tick): a tick can never be
#: enqueued as two different jobs, even if a schedule's state were reset.
_JOB_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://bananas/periodic-tasks")

#: Fields added to the job record (kept by every Bananas version, see Job.extra).
RECORD_SCHEDULE_ID = "schedule_id"
RECORD_SCHEDULE_TICK = "schedule_tick"


class ScheduleError(ValidationError):
    """A periodic schedule is invalid. The message starts with the schedule's id."""

    def __init__(self, schedule_id: str, reason: str) -> None:
        self.schedule_id = schedule_id
        self.reason = reason
        super().__init__(f"schedule {schedule_id!r}: {reason}")


class MissedPolicy(StrEnum):
    """What happens to ticks missed while no scheduler was running (late by more than grace).

    ``skip``: they are dropped; the schedule resumes with its next tick.
    ``once``: they are collapsed into one run, for the latest missed tick.
    """

    SKIP = "skip"
    ONCE = "once"

    def __str__(self) -> str:
        return self.value


DEFAULT_MISSED = MissedPolicy.ONCE


@dataclass(frozen=True, slots=True)
class Schedule:
    """A validated periodic job. Build one with ``Schedule.create`` (or ``registry.periodic``)."""

    id: str
    cron: CronSpec
    job: str
    payload: Any
    routing_key: str
    priority: Priority
    missed: MissedPolicy
    grace: float
    max_retries: int
    description: str | None

    @classmethod
    def create(
        cls,
        cron: str,
        job: str,
        payload: Any = None,
        *,
        schedule_id: str | None = None,
        routing_key: str = DEFAULT_ROUTING_KEY,
        priority: Priority | str = Priority.NORMAL,
        timezone: str = "UTC",
        missed: MissedPolicy | str = DEFAULT_MISSED,
        grace: float = DEFAULT_GRACE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
    ) -> Schedule:
        """Validate everything now; raise ``ScheduleError`` naming the schedule."""
        if schedule_id is None and (not isinstance(job, str) or not job):
            raise ScheduleError(repr(job), f"job name must be a non-empty string, got {job!r}")
        sid = schedule_id if schedule_id is not None else job
        label = sid if isinstance(sid, str) and sid else repr(sid)
        if not isinstance(sid, str) or not _SCHEDULE_ID.fullmatch(sid):
            hint = "" if schedule_id is not None else " (it defaults to the job name; pass schedule_id=...)"
            raise ScheduleError(str(label), f"invalid schedule id{hint}: an id is {SCHEDULE_ID_RULE}")
        try:
            spec = CronSpec(cron, timezone)
        except CronError as exc:
            raise ScheduleError(sid, exc.reason) from None
        try:
            policy = MissedPolicy(missed.strip().lower() if isinstance(missed, str) else missed)
        except ValueError:
            raise ScheduleError(sid, f"unknown missed-tick policy {missed!r}: expected 'skip' or 'once'") from None
        # At least a second: a scheduler always wakes a little after a tick, and with no
        # grace at all every tick would count as missed.
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not math.isfinite(grace) or grace < 1:
            raise ScheduleError(sid, f"grace must be a number of seconds >= 1, got {grace!r}")
        try:
            # A probe job validates name, payload, priority, routing key, retries, description.
            probe = new_job(
                job, payload, priority, routing_key, now=to_datetime(0), max_retries=max_retries,
                description=description,
            )  # fmt: skip
        except ValidationError as exc:
            raise ScheduleError(sid, str(exc)) from None
        return cls(
            id=sid,
            cron=spec,
            job=probe.name,
            # A snapshot, so later changes to the caller's object do not leak into runs.
            payload=codec.loads(codec.dumps(payload)),
            routing_key=probe.routing_key,
            priority=probe.priority,
            missed=policy,
            grace=float(grace),
            max_retries=probe.max_retries,
            description=probe.description,
        )

    def build_job(self, tick: int, now: float, *, cluster: bool = False) -> Job:
        """The job for ``tick`` (Unix seconds): a normal pending job, plus the schedule
        id and tick time in its record. Its id is derived from (schedule id, tick); with
        ``cluster`` (the cluster key layout) it also carries the routing key, as every id
        there does: ``<routing_key>~<uuid5>``."""
        job_id = tick_job_id(self.id, tick)
        if cluster:
            job_id = f"{self.routing_key}{ID_ROUTE_SEPARATOR}{job_id}"
        job = new_job(
            self.job, self.payload, self.priority, self.routing_key, now=to_datetime(now),
            max_retries=self.max_retries, description=self.description, max_payload_bytes=None,
            job_id=job_id,
        )  # fmt: skip
        job.extra[RECORD_SCHEDULE_ID] = self.id
        job.extra[RECORD_SCHEDULE_TICK] = format_time(to_datetime(tick))
        return job

    def definition(self) -> dict[str, str]:
        """What ``bananas schedules`` shows about the definition (stored with the state)."""
        return {
            "cron": self.cron.expression,
            "timezone": self.cron.timezone,
            "job": self.job,
            "routing_key": self.routing_key,
            "priority": self.priority.value,
            "missed": self.missed.value,
            "grace": _number(self.grace),
        }


def tick_job_id(schedule_id: str, tick: int) -> str:
    return str(uuid.uuid5(_JOB_ID_NAMESPACE, f"{schedule_id}@{tick}"))


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)
