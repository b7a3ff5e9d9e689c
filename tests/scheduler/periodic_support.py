"""Helpers for the periodic-task tests: a settable clock and readers of what was enqueued."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import redis

from bananas.core.job import Job
from bananas.redis import keys


class FakeClock:
    """A ``Clock`` that only moves when told to."""

    def __init__(self, start: float) -> None:
        self.value = float(start)

    def now(self) -> float:
        return self.value

    def set(self, value: float) -> None:
        assert value >= self.value, "the fake clock never goes back"
        self.value = float(value)


def local_ts(zone: str, year: int, month: int, day: int, hour: int, minute: int, *, fold: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def queued_jobs(r: redis.Redis, routing_key: str = "default", priority: str = "normal") -> list[Job]:
    """Jobs in a ready list, oldest first."""
    ids = [_text(i) for i in reversed(r.lrange(keys.route_queue(routing_key, priority), 0, -1))]
    records = r.mget([keys.job(i) for i in ids]) if ids else []
    jobs = []
    for job_id, raw in zip(ids, records, strict=True):
        assert raw is not None, f"job {job_id} is queued but has no record"
        jobs.append(Job.from_record(raw, job_id=job_id))
    return jobs


def ticks_of(jobs: list[Job], zone: str = "UTC") -> list[str]:
    """The schedule tick of each job, as local time with offset (e.g. 2026-03-29T03:00:00+02:00)."""
    out = []
    for job in jobs:
        tick = datetime.fromisoformat(job.extra["schedule_tick"])
        out.append(tick.astimezone(ZoneInfo(zone)).isoformat())
    return out


def state(r: redis.Redis, schedule_id: str) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in r.hgetall(keys.schedule(schedule_id)).items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
