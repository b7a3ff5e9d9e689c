"""The job model and its JSON record (``bananas:job:{id}``).

The record is the wire format other clients share (see docs/WIRE_FORMAT.md). Fields
this version does not know are kept in ``Job.extra`` and written back unchanged, so a
newer producer's data survives a trip through an older worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bananas.core import codec
from bananas.core.clock import format_time, parse_time
from bananas.core.priority import Priority
from bananas.core.progress import Progress, ProgressSink, check_progress
from bananas.core.routing import DEFAULT_ROUTING_KEY, normalize_routing_key, validate_routing_key
from bananas.errors import MalformedJobError, ValidationError

#: Statuses after which a job never runs again.
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "expired"})


class JobStatus(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    #: Removed by an operator before it ran (``bananas cancel``, ``bananas purge``).
    CANCELLED = "cancelled"
    #: Not started before its ``expires_at``; it never runs.
    EXPIRED = "expired"

    def __str__(self) -> str:
        return self.value


DEFAULT_MAX_RETRIES = 3
#: Upper bound of ``attempts`` and ``max_retries`` (records are read by clients in other
#: languages, where these are 32-bit integers).
MAX_COUNTER = 2**31 - 1
#: Longest TTL (seconds) a record may carry: about 68 years, a 32-bit integer in every
#: language, and far below what Redis' EXPIRE overflows on.
MAX_TTL = 2**31 - 1
#: Longest job name and description accepted from producers.
MAX_NAME_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 64 * 1024

#: Optional record field: the submitter's W3C trace context (bananas.tracing,
#: docs/WIRE_FORMAT.md). Kept in ``Job.extra`` like any producer's field.
TRACEPARENT = "traceparent"

# Fields with a meaning in this version; everything else in a record goes to ``extra``.
_KNOWN = frozenset(
    {
        "id",
        "name",
        "description",
        "payload",
        "status",
        "priority",
        "routing_key",
        "created_at",
        "updated_at",
        "scheduled_for",
        "attempts",
        "max_retries",
        "error",
    }
)


def new_job_id() -> str:
    """A random (version 4) UUID as text, the same as ``str(uuid.uuid4())``, formatted
    without building a ``uuid.UUID`` (half the cost on the submit path)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_job_ids(count: int) -> list[str]:
    """``count`` ids as ``new_job_id`` makes them, from one read of the random source
    (bulk submit: one system call instead of one per job)."""
    raw = bytearray(os.urandom(16 * count))
    ids: list[str] = []
    for offset in range(0, 16 * count, 16):
        raw[offset + 6] = raw[offset + 6] & 0x0F | 0x40
        raw[offset + 8] = raw[offset + 8] & 0x3F | 0x80
        h = raw[offset : offset + 16].hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


@dataclass(slots=True)
class Job:
    """One unit of work. ``payload`` is the decoded JSON value."""

    id: str
    name: str
    payload: Any
    priority: Priority
    routing_key: str
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    max_retries: int = DEFAULT_MAX_RETRIES
    description: str | None = None
    scheduled_for: datetime | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: created_at as read from the record, written back verbatim while unchanged (keeps
    #: a producer's exact text, nanoseconds included, and saves formatting it again).
    _created_text: tuple[datetime, str] | None = field(default=None, repr=False, compare=False)
    #: Set by the worker when an operator asked to cancel this job while it runs
    #: (``bananas cancel``). A sync handler that runs long should check it and return;
    #: threads cannot be stopped from outside. Never written to the record.
    cancel_requested: bool = field(default=False, repr=False, compare=False)
    #: The last progress reported (``set_progress``), or read by ``Client.get_job``.
    #: Never written to the record (it lives in ``bananas:progress:{id}``).
    progress: Progress | None = field(default=None, repr=False, compare=False)
    #: Set by the worker: where ``set_progress`` sends reports (throttled).
    _progress_sink: ProgressSink | None = field(default=None, repr=False, compare=False)
    #: updated_at already formatted by whoever set it (the worker formats a job's finish
    #: time once, for the record and the result); used while updated_at is that time.
    _updated_text: tuple[datetime, str] | None = field(default=None, repr=False, compare=False)

    @property
    def parent_result(self) -> Any:
        """A workflow step's input from the stage before it: the previous step's result,
        or the list of a group's results in the group's order (None for a first step)."""
        return self.extra.get("parent_result")

    def set_progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the handler is (0 to 1), with an optional message. Safe from
        sync and async handlers; the worker writes at most a few reports a second and
        always the last one."""
        fraction, message = check_progress(fraction, message)
        self.progress = Progress(fraction, message)
        if self._progress_sink is not None:
            self._progress_sink(fraction, message)

    def set_routing_key(self, key: str, *, now: datetime | None = None) -> None:
        """Change the routing key after validating it; bumps ``updated_at``."""
        self.routing_key = validate_routing_key(key)
        self.updated_at = now or datetime.now(self.updated_at.tzinfo)

    def touch(self, now: datetime) -> None:
        self.updated_at = now

    # -- typed, lenient views of the extra fields ----------------------------------
    # Every reader goes through these: a record written by another producer may carry
    # anything under these names, and one bad value must never stop the reader (a
    # recovery pass, a reconcile pass, a batch of acknowledgements) for other jobs.

    @property
    def recoveries(self) -> int:
        """Times this job's worker died under it (0 when absent or not a count)."""
        return _count(self.extra.get("recoveries")) or 0

    @property
    def result_ttl(self) -> int | None:
        """The job's own result TTL in seconds, set at submit; None when absent or out of range."""
        value = _count(self.extra.get("result_ttl"))
        return value if value is not None and value <= MAX_TTL else None

    @property
    def timeout(self) -> float | None:
        """The job's own timeout in seconds; None unless a positive finite number."""
        value = self.extra.get("timeout")
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
            return float(value)
        return None

    @property
    def parked(self) -> dict[str, Any] | None:
        """Why and by whom the job was last handed on (``{reason, by, at}``), if it was."""
        value = self.extra.get("parked")
        return value if isinstance(value, dict) else None

    @property
    def history(self) -> list[dict[str, Any]]:
        """Past failed attempts (entries that are not objects are skipped)."""
        value = self.extra.get("history")
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []

    @property
    def poison_pill(self) -> bool:
        return self.extra.get("poison_pill") is True

    @property
    def malformed(self) -> bool:
        return self.extra.get("malformed") is True

    @property
    def failed_at(self) -> datetime | None:
        try:
            return parse_time(self.extra.get("failed_at"))
        except (ValueError, TypeError):
            return None

    @property
    def dlq_retries(self) -> int:
        return _count(self.extra.get("dlq_retries")) or 0

    # -- the record ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = dict(self.extra) if self.extra else {}
        record["id"] = self.id
        record["name"] = self.name
        if self.description is not None:
            record["description"] = self.description
        record["payload"] = self.payload
        record["status"] = self.status.value
        record["priority"] = self.priority.value
        record["routing_key"] = self.routing_key
        cached = self._created_text
        formatted: str | None = None
        if cached and cached[0] is self.created_at:
            record["created_at"] = cached[1]  # the producer's text, verbatim
        else:
            record["created_at"] = formatted = format_time(self.created_at)
        # A new job's updated_at is its created_at: format that time once.
        updated = self._updated_text
        if formatted is not None and self.updated_at is self.created_at:
            record["updated_at"] = formatted
        elif updated and updated[0] is self.updated_at:
            record["updated_at"] = updated[1]
        else:
            record["updated_at"] = format_time(self.updated_at)
        if self.scheduled_for is not None:
            record["scheduled_for"] = format_time(self.scheduled_for)
        record["attempts"] = self.attempts
        record["max_retries"] = self.max_retries
        if self.error is not None:
            record["error"] = self.error
        return record

    def to_record(self) -> bytes:
        return codec.dumps(self.to_dict())

    @classmethod
    def from_record(
        cls, raw: bytes | str, *, job_id: str | None = None, default_max_retries: int = DEFAULT_MAX_RETRIES
    ) -> Job:
        """Read a record written by any Bananas producer; raise ``MalformedJobError``."""
        try:
            data = codec.loads(raw)
        except codec.JSONDecodeError as exc:
            raise MalformedJobError(f"record is not valid JSON ({exc})", job_id) from None
        if not isinstance(data, dict):
            raise MalformedJobError(f"record is JSON but not an object (got {type(data).__name__})", job_id)
        return cls.from_dict(data, job_id=job_id, default_max_retries=default_max_retries)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, job_id: str | None = None, default_max_retries: int = DEFAULT_MAX_RETRIES
    ) -> Job:
        record_id = data.get("id")
        if not isinstance(record_id, str) or not record_id:
            raise MalformedJobError("record has no id", job_id)
        if job_id is not None and record_id != job_id:
            raise MalformedJobError(f"record id {record_id!r} does not match its key", job_id)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise MalformedJobError("record has no job name", record_id)
        try:
            priority = Priority.parse(data.get("priority") or "normal")
            routing_key = normalize_routing_key(data.get("routing_key"))
            status = JobStatus(data.get("status") or "pending")
            created = parse_time(data.get("created_at"))
            updated = parse_time(data.get("updated_at")) or created
            scheduled_for = parse_time(data.get("scheduled_for"))
            attempts = int(data.get("attempts") or 0)
            max_retries = data.get("max_retries")
            max_retries = default_max_retries if max_retries is None else int(max_retries)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise MalformedJobError(f"record has an invalid field: {exc}", record_id) from None
        if created is None or updated is None:
            raise MalformedJobError("record has no created_at time", record_id)
        for field_name, count in (("attempts", attempts), ("max_retries", max_retries)):
            if not 0 <= count <= MAX_COUNTER:
                raise MalformedJobError(f"record has an invalid field: {field_name} is {count}", record_id)
        description = data.get("description")
        error = data.get("error")
        for field_name, text in (("description", description), ("error", error)):
            if text is not None and not isinstance(text, str):
                raise MalformedJobError(
                    f"record has an invalid field: {field_name} must be a string, not {type(text).__name__}",
                    record_id,
                )
        extra = {k: v for k, v in data.items() if k not in _KNOWN}
        job = cls(
            id=record_id,
            name=name,
            payload=data.get("payload"),
            priority=priority,
            routing_key=routing_key,
            status=status,
            created_at=created,
            updated_at=updated,
            attempts=attempts,
            max_retries=max_retries,
            # Older SDKs write "" for unset optional fields; "" and absent mean the same.
            description=description or None,
            scheduled_for=scheduled_for,
            error=error or None,
            extra=extra,
        )
        raw_created = data.get("created_at")
        if isinstance(raw_created, str):
            job._created_text = (created, raw_created)
        return job


def record_status(raw: bytes | str | None) -> str | None:
    """The ``status`` text of a raw record, read leniently (None when there is none)."""
    if raw is None:
        return None
    try:
        data = codec.loads(raw)
    except codec.JSONDecodeError:
        return None
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, str) else None


def validate_new_job(
    name: str, priority: Priority | str, routing_key: str, max_retries: int, description: str | None
) -> Priority:
    """Check everything about a new job but its payload; returns the parsed priority."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"job name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"job name is {len(name)} characters long, the maximum is {MAX_NAME_LENGTH}")
    _check_text("job name", name)
    prio = Priority.parse(priority)
    validate_routing_key(routing_key)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValidationError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    if max_retries > MAX_COUNTER:
        raise ValidationError(f"max_retries must be at most {MAX_COUNTER}, got {max_retries}")
    if description is not None:
        if not isinstance(description, str):
            raise ValidationError(f"description must be a string, got {type(description).__name__}")
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise ValidationError(
                f"description is {len(description)} characters long, the maximum is {MAX_DESCRIPTION_LENGTH}"
            )
        _check_text("description", description)
    return prio


class RecordTemplate:
    """Encodes new pending records that differ only in id and payload (bulk submit):
    the shared fields are encoded once, the rest is concatenation."""

    def __init__(
        self,
        name: str,
        priority: Priority,
        routing_key: str,
        now: datetime,
        max_retries: int,
        extra: dict[str, Any] | None = None,
    ) -> None:
        stamp = format_time(now)
        shared = {
            **(extra or {}),
            "name": name,
            "status": JobStatus.PENDING.value,
            "priority": priority.value,
            "routing_key": routing_key,
            "created_at": stamp,
            "updated_at": stamp,
            "attempts": 0,
            "max_retries": max_retries,
        }
        self._tail = b"," + codec.dumps(shared)[1:]

    def encode(self, job_id: str, payload_json: bytes) -> bytes:
        return b'{"id":"' + job_id.encode() + b'","payload":' + payload_json + self._tail


def new_job(
    name: str,
    payload: Any,
    priority: Priority | str,
    routing_key: str,
    *,
    now: datetime,
    max_retries: int = DEFAULT_MAX_RETRIES,
    description: str | None = None,
    max_payload_bytes: int | None = codec.DEFAULT_MAX_PAYLOAD_BYTES,
    job_id: str | None = None,
) -> Job:
    """Build a validated pending job. Raises a ``ValidationError`` subclass on bad input."""
    prio = validate_new_job(name, priority, routing_key, max_retries, description)
    codec.check_payload(payload, max_bytes=max_payload_bytes)
    return Job(
        id=job_id or new_job_id(),
        name=name,
        payload=payload,
        priority=prio,
        routing_key=routing_key or DEFAULT_ROUTING_KEY,
        status=JobStatus.PENDING,
        created_at=now,
        updated_at=now,
        max_retries=max_retries,
        description=description,
    )


def _count(value: Any) -> int | None:
    """A non-negative integer read leniently (an integral float from another language
    counts); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def _check_text(what: str, value: str) -> None:
    """Text must be encodable as UTF-8 to cross the wire (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{what} is not valid text: {exc.reason} at position {exc.start}") from None
