"""Job logs: one line per job outcome, written by a listener of the job events.

Outcomes are logged at INFO on the ``bananas.jobs`` logger, a start at DEBUG. Every line
carries the event's fields in ``record.bananas`` (a dict), so a JSON formatter prints them
as keys: ``event`` (the ``EventKind`` value), ``job_id``, ``name``, ``routing_key``,
``priority``, ``attempt``, ``duration_s``, ``worker_id``, and ``error`` (its first line),
``traceback`` and ``retry_at`` when they apply. How a line looks (text or JSON) is chosen at the edges (``cli/``).
"""

from __future__ import annotations

import logging

from bananas.core.clock import format_time, to_datetime
from bananas.events import EventKind, JobEvent

log = logging.getLogger("bananas.jobs")

_VERBS = {
    EventKind.STARTED: "started",
    EventKind.SUCCEEDED: "succeeded",
    EventKind.RETRYING: "failed",
    EventKind.DEAD: "failed",
    EventKind.RECOVERED: "lost its worker (lease expired), put back in its queue",
    EventKind.GIVEN_BACK: "handed back to its queue at shutdown",
    EventKind.PARKED: "handed on to a worker pool that can run it",
    EventKind.CANCELLED: "cancelled",
    EventKind.EXPIRED: "expired before it started, it will not run",
}


class JobLogListener:
    """``registry.on()(JobLogListener())``, or pass it in the worker's listeners."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger = log) -> None:
        self._logger = logger

    def __call__(self, event: JobEvent) -> None:
        level = logging.DEBUG if event.kind is EventKind.STARTED else logging.INFO
        if not self._logger.isEnabledFor(level):
            return
        self._logger.log(level, describe(event), extra={"bananas": fields(event)})


def fields(event: JobEvent) -> dict[str, object]:
    out: dict[str, object] = {
        "event": event.kind.value,
        "job_id": event.job_id,
        "name": event.name,
        "routing_key": event.routing_key,
        "priority": event.priority,
        "attempt": event.attempt,
        "duration_s": None if event.duration_s is None else round(event.duration_s, 6),
        "worker_id": event.worker_id,
    }
    if event.error is not None:
        head, _, detail = event.error.partition("\n")
        out["error"] = head
        if detail.strip():
            out["traceback"] = detail
    if event.retry_at is not None:
        out["retry_at"] = format_time(to_datetime(event.retry_at))
    if not event.applied:
        out["applied"] = False
    return out


def describe(event: JobEvent) -> str:
    """``job 3f2a (send_email, email/high) attempt 2 failed after 0.520s, will be retried
    at 2026-12-03T10:00:04.000000Z (in 4.0s): ValueError: boom [worker host:41:9c2e]``"""
    text = (
        f"job {event.job_id} ({event.name}, {event.routing_key}/{event.priority}) "
        f"attempt {event.attempt} {_VERBS.get(event.kind, event.kind.value)}"
    )
    if event.duration_s is not None:
        text += f" {'in' if event.kind is EventKind.SUCCEEDED else 'after'} {event.duration_s:.3f}s"
    if event.kind is EventKind.RETRYING:
        text += ", will be retried"
        if event.retry_at is not None:
            text += f" at {format_time(to_datetime(event.retry_at))} (in {max(0.0, event.retry_at - event.at):.1f}s)"
    elif event.kind is EventKind.DEAD:
        text += ", moved to the dead letters"
    if event.error:
        # The first line; the traceback stays in the job's record (``bananas job ID``).
        text += f": {event.error.partition(chr(10))[0]}"
    if event.worker_id:
        text += f" [worker {event.worker_id}]"
    if not event.applied:
        text += " (not applied: the job's lease was lost, another delivery owns it)"
    return text
