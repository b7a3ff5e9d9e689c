"""What happens to a job at each step of its life. Pure: the worker applies the result.

pending/scheduled --dequeue--> processing --ok--> completed
      |     |                       |--error, attempts <= max_retries--> scheduled (retry)
      |     |                       |--error, no retries left / permanent--> failed (dead letters)
      |     |                       |--cancel requested--> cancelled
      |     |                       `--shutdown--> pending (given back, attempt not counted)
      |     `--not started before expires_at--> expired
      `--cancelled by an operator--> cancelled
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bananas.core.clock import format_time, parse_time, to_datetime
from bananas.core.job import Job, JobStatus
from bananas.core.retry import RetryPolicy, should_retry


class Verdict(StrEnum):
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class FailureDecision:
    verdict: Verdict
    due: float | None = None  # Unix seconds, for RETRY


def mark_started(job: Job, now: datetime) -> None:
    job.attempts += 1
    job.status = JobStatus.PROCESSING
    job.scheduled_for = None
    job.updated_at = now


def mark_completed(job: Job, now: datetime) -> None:
    job.status = JobStatus.COMPLETED
    job.error = None
    job.updated_at = now


def mark_pending(job: Job, now: datetime) -> None:
    job.status = JobStatus.PENDING
    job.scheduled_for = None
    job.updated_at = now


def mark_given_back(job: Job, now: datetime) -> None:
    """Handed back at shutdown: the attempt that was begun is not counted."""
    if job.status is JobStatus.PROCESSING and job.attempts > 0:
        job.attempts -= 1
    mark_pending(job, now)


def mark_cancelled(job: Job, now: datetime, *, running: bool = False) -> None:
    job.status = JobStatus.CANCELLED
    job.scheduled_for = None
    job.updated_at = now
    job.error = "cancelled while running" if running else "cancelled before it ran"
    job.extra["cancelled_at"] = format_time(now)


def mark_expired(job: Job, now: datetime) -> None:
    job.status = JobStatus.EXPIRED
    job.scheduled_for = None
    job.updated_at = now
    job.error = f"expired: not started before {job.extra.get('expires_at')}"


def expires_at(job: Job) -> float | None:
    """The job's ``expires_at`` as Unix seconds; None when absent or unreadable (a
    foreign producer's junk never makes a job expire)."""
    value = job.extra.get("expires_at")
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_time(value)
    except ValueError:
        return None
    return parsed.timestamp() if parsed is not None else None


def is_expired(job: Job, now: float) -> bool:
    deadline = expires_at(job)
    return deadline is not None and now >= deadline


def decide_failure(
    job: Job,
    now: float,
    policy: RetryPolicy,
    *,
    permanent: bool = False,
    retry_in: float | None = None,
    rng: random.Random | None = None,
) -> FailureDecision:
    """Retry with backoff while retries remain, unless the failure is permanent."""
    if permanent or not should_retry(job.attempts, job.max_retries):
        return FailureDecision(Verdict.DEAD)
    delay = policy.delay(job.attempts, rng) if retry_in is None else max(0.0, retry_in)
    return FailureDecision(Verdict.RETRY, now + delay)


#: Failed attempts remembered in a record's ``history`` (the newest are kept).
HISTORY_LIMIT = 10


def apply_failure(job: Job, decision: FailureDecision, error: str, now: float, *, worker: str | None = None) -> None:
    job.error = error
    job.updated_at = to_datetime(now)
    record_attempt(job, error, now, worker=worker)
    if decision.verdict is Verdict.RETRY:
        assert decision.due is not None
        job.status = JobStatus.SCHEDULED
        job.scheduled_for = to_datetime(decision.due)
    else:
        job.status = JobStatus.FAILED
        job.scheduled_for = None


def record_attempt(job: Job, error: str, now: float, *, worker: str | None = None) -> None:
    """Append a failed attempt to ``job.extra["history"]`` (bounded to ``HISTORY_LIMIT``).

    ``error`` keeps only the last attempt's full text; the history keeps one line per
    attempt so ``bananas dlq show`` can tell what happened before.
    """
    entry: dict[str, object] = {
        "attempt": job.attempts,
        "time": format_time(to_datetime(now)),
        "error": error.split("\n", 1)[0][:500],
    }
    if worker:
        entry["worker"] = worker
    history = job.history
    history.append(entry)
    job.extra["history"] = history[-HISTORY_LIMIT:]
