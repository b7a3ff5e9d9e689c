"""A schedule's state as stored in ``bananas:schedule:{id}``, read for display. Pure.

Hash fields (times are Unix seconds, as text):

=====================  =====================================================================
``cursor``             every tick at or before it has been decided (the compare-and-set value)
``next_run``           the first tick after the cursor ('' when the expression has no more)
``last_run``           tick of the last enqueued job; ``last_run_at`` when it was enqueued
``last_job_id``        id of that job
``run_count``          jobs enqueued by this schedule
``last_error``         last failure to enqueue, and ``last_error_at`` (kept after later runs)
``last_missed_*``      ``from``/``to``/``policy``/``at`` of the last batch of missed ticks
definition             ``cron``, ``timezone``, ``job``, ``routing_key``, ``priority``,
                       ``missed``, ``grace``, written by the last scheduler that started
=====================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from bananas.scheduler.cron import CronError, load_timezone


@dataclass(frozen=True, slots=True)
class ScheduleState:
    id: str
    cron: str = ""
    timezone: str = "UTC"
    job: str = ""
    routing_key: str = ""
    priority: str = ""
    missed: str = ""
    grace: str = ""
    cursor: int | None = None
    next_run: int | None = None
    last_run: int | None = None
    last_run_at: float | None = None
    last_job_id: str | None = None
    run_count: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_missed_from: int | None = None
    last_missed_to: int | None = None
    last_missed_policy: str | None = None
    last_missed_at: float | None = None
    created_at: float | None = None
    updated_at: float | None = None

    @property
    def tz(self) -> tzinfo:
        try:
            return load_timezone(self.timezone)
        except CronError:
            return UTC

    def local(self, ts: float | None) -> str | None:
        """``ts`` as RFC 3339 in the schedule's time zone (None stays None)."""
        if ts is None:
            return None
        return datetime.fromtimestamp(ts, self.tz).isoformat(timespec="seconds")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cron": self.cron,
            "timezone": self.timezone,
            "job": self.job,
            "routing_key": self.routing_key,
            "priority": self.priority,
            "missed": self.missed,
            "grace": self.grace,
            "last_run": self.local(self.last_run),
            "last_run_at": self.local(self.last_run_at),
            "last_job_id": self.last_job_id,
            "next_run": self.local(self.next_run),
            "run_count": self.run_count,
            "last_error": self.last_error,
            "last_error_at": self.local(self.last_error_at),
            "last_missed": None
            if self.last_missed_from is None
            else {
                "from": self.local(self.last_missed_from),
                "to": self.local(self.last_missed_to),
                "policy": self.last_missed_policy,
                "at": self.local(self.last_missed_at),
            },
        }


def _text(raw: Mapping[Any, Any], name: str) -> str | None:
    value = raw.get(name.encode(), raw.get(name))
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text or None


def _int(raw: Mapping[Any, Any], name: str) -> int | None:
    text = _text(raw, name)
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _float(raw: Mapping[Any, Any], name: str) -> float | None:
    text = _text(raw, name)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def parse_state(schedule_id: str, raw: Mapping[Any, Any]) -> ScheduleState:
    """Build a state from an HGETALL reply; unknown or unreadable fields are ignored."""
    return ScheduleState(
        id=schedule_id,
        cron=_text(raw, "cron") or "",
        timezone=_text(raw, "timezone") or "UTC",
        job=_text(raw, "job") or "",
        routing_key=_text(raw, "routing_key") or "",
        priority=_text(raw, "priority") or "",
        missed=_text(raw, "missed") or "",
        grace=_text(raw, "grace") or "",
        cursor=_int(raw, "cursor"),
        next_run=_int(raw, "next_run"),
        last_run=_int(raw, "last_run"),
        last_run_at=_float(raw, "last_run_at"),
        last_job_id=_text(raw, "last_job_id"),
        run_count=_int(raw, "run_count") or 0,
        last_error=_text(raw, "last_error"),
        last_error_at=_float(raw, "last_error_at"),
        last_missed_from=_int(raw, "last_missed_from"),
        last_missed_to=_int(raw, "last_missed_to"),
        last_missed_policy=_text(raw, "last_missed_policy"),
        last_missed_at=_float(raw, "last_missed_at"),
        created_at=_float(raw, "created_at"),
        updated_at=_float(raw, "updated_at"),
    )
