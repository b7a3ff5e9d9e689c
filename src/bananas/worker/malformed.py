"""Records for jobs that cannot be read, so they can be parked without losing data."""

from __future__ import annotations

from bananas.core import codec
from bananas.core.clock import format_time, to_datetime

#: Job name given to the stand-in record of a job whose own record could not be read.
MALFORMED_JOB_NAME = "bananas.malformed_record"


def stub_record(job_id: str, reason: str, raw: bytes | None, now: float) -> bytes:
    """A failed-job record that explains ``reason`` and keeps the original bytes."""
    stamp = format_time(to_datetime(now))
    record: dict[str, object] = {
        # JSON needs valid UTF-8; an id that is not keeps its exact bytes in the key only.
        "id": job_id.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
        "name": MALFORMED_JOB_NAME,
        "payload": None,
        "status": "failed",
        "priority": "normal",
        "routing_key": "default",
        "created_at": stamp,
        "updated_at": stamp,
        "attempts": 0,
        "max_retries": 0,
        "error": f"malformed job record: {reason}",
        "malformed": True,
    }
    if raw is not None:
        record["original_record"] = raw.decode("utf-8", errors="replace")
    return codec.dumps(record)
