"""A finished job's outcome as stored in ``bananas:result:{id}`` (a hash).

Fields: ``status`` ("completed", "failed", "cancelled" or "expired"), ``result`` (JSON text, completed only),
``error`` (failed only), ``name``, ``routing_key``, ``attempts``, ``started_at`` and
``finished_at`` (RFC 3339, microseconds), ``completed_at`` (RFC 3339, whole seconds,
``Z``: the original Go service's field), ``duration_ms`` (whole milliseconds as decimal
text, as the original writes it), ``worker``.

The original's readers (its Go ``WaitForResult``, Python and TypeScript SDKs) need
``completed_at`` and an integer ``duration_ms``: Python's ``int()`` raises on ``"0.681"``
and Go's ``ParseInt`` reads it as 0. Our reader takes both our hashes and the
original's (``completed_at`` stands in for ``finished_at``; ``duration_ms`` with or
without a fraction).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bananas.core import codec
from bananas.core.clock import format_time, parse_time, to_datetime
from bananas.core.job import Job
from bananas.errors import JobCancelledError, JobExpiredError, JobFailedError

COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: str
    status: str
    result: Any = None
    error: str | None = None
    name: str | None = None
    routing_key: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    worker: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED

    def value(self) -> Any:
        """The handler's return value; ``JobFailedError`` if the job failed
        (``JobCancelledError``/``JobExpiredError`` if it was cancelled or expired)."""
        if self.status == CANCELLED:
            raise JobCancelledError(self.job_id, self.error or "cancelled")
        if self.status == EXPIRED:
            raise JobExpiredError(self.job_id, self.error or "expired")
        if self.status != COMPLETED:
            raise JobFailedError(self.job_id, self.error or "")
        return self.result

    @classmethod
    def from_hash(cls, job_id: str, data: Mapping[bytes | str, bytes | str]) -> JobResult:
        fields = {codec.decode_id(k): codec.decode_id(v) for k, v in data.items()}
        raw = fields.get("result")
        duration = fields.get("duration_ms")
        return cls(
            job_id=job_id,
            status=fields.get("status", ""),
            result=codec.loads(raw) if raw not in (None, "") else None,
            error=fields.get("error") or None,
            name=fields.get("name"),
            routing_key=fields.get("routing_key"),
            attempts=int(fields.get("attempts") or 0),
            started_at=parse_time(fields.get("started_at")),
            finished_at=_finished_at(fields),
            duration_ms=_milliseconds(duration),
            worker=fields.get("worker"),
        )


def result_fields(
    job: Job,
    *,
    status: str,
    started: float,
    finished: float,
    worker: str,
    encoded_result: bytes | None = None,
    finished_text: str | None = None,
) -> list[str | bytes]:
    """Flat field/value list for HSET, as the ack/bury scripts take it. ``finished_text``:
    ``finished`` already formatted (``format_time``), when the caller has it."""
    finished_at = finished_text if finished_text is not None else format_time(to_datetime(finished))
    out: list[str | bytes] = [
        "status", status,
        "name", job.name,
        "routing_key", job.routing_key,
        "attempts", str(job.attempts),
        "started_at", format_time(to_datetime(started)),
        "finished_at", finished_at,
        "completed_at", whole_seconds(finished_at),
        "duration_ms", str(max(0, int((finished - started) * 1000))),
        "worker", worker,
    ]  # fmt: skip
    if encoded_result is not None:
        out += ["result", encoded_result]
    if job.error:
        out += ["error", job.error]
    return out


def whole_seconds(text: str) -> str:
    """``format_time``'s ``2026-12-03T13:14:26.123456Z`` cut to ``2026-12-03T13:14:26Z``:
    the ``format_seconds`` layout of the same instant, without formatting it again."""
    if len(text) == 27 and text[19] == "." and text[26] == "Z":
        return text[:19] + "Z"
    return format_seconds(parse_time(text).timestamp())  # type: ignore[union-attr]


def format_seconds(timestamp: float) -> str:
    """RFC 3339 at whole seconds, UTC written ``Z``: Go's ``time.RFC3339`` layout, which
    the original's ``completed_at`` uses (``2026-12-03T13:14:26Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _finished_at(fields: Mapping[str, str]) -> datetime | None:
    for name in ("finished_at", "completed_at"):
        try:
            found = parse_time(fields.get(name))
        except ValueError:
            continue
        if found is not None:
            return found
    return None


def _milliseconds(text: str | None) -> float | None:
    """``duration_ms`` as either side writes it: ``"1144"`` (integer, the original and
    ours since the migration work) or ``"0.681"`` (ours before)."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
