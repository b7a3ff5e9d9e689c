"""The job record (``bananas:job:{id}``): round trip, unknown fields, legacy forms, times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bananas import DEFAULT_ROUTING_KEY, InvalidRoutingKeyError, Job, JobStatus, MalformedJobError, Priority
from bananas.core.job import new_job

NOW = datetime(2025, 11, 10, 4, 16, 33, 123456, tzinfo=UTC)


def make_job(**overrides: object) -> Job:
    job = new_job("process_image", {"w": 2, "h": 3}, Priority.HIGH, "gpu", now=NOW, description="resize")
    for name, value in overrides.items():
        setattr(job, name, value)
    return job


def record(**fields: object) -> bytes:
    base: dict[str, object] = {
        "id": "0b6f6d8e-3b59-4c55-9d0c-1d8b2b1c0a01",
        "name": "send_email",
        "payload": {"to": "a@b.c"},
        "status": "pending",
        "priority": "normal",
        "created_at": "2025-11-10T04:16:33Z",
        "updated_at": "2025-11-10T04:16:33Z",
        "attempts": 0,
        "max_retries": 3,
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_round_trip_keeps_every_field() -> None:
    job = make_job(
        attempts=2,
        status=JobStatus.SCHEDULED,
        scheduled_for=NOW + timedelta(seconds=5),
        error="ValueError: boom",
        extra={"future_field": {"nested": [1, 2]}},
    )
    again = Job.from_record(job.to_record())
    assert again == job
    assert Job.from_record(again.to_record()).to_dict() == job.to_dict()


def test_record_has_the_wire_fields() -> None:
    data = json.loads(make_job().to_record())
    assert data["name"] == "process_image"
    assert data["payload"] == {"w": 2, "h": 3}
    assert data["status"] == "pending"
    assert data["priority"] == "high"
    assert data["routing_key"] == "gpu"
    assert data["attempts"] == 0
    assert data["max_retries"] == 3
    assert data["description"] == "resize"
    # RFC 3339 with an explicit offset
    assert datetime.fromisoformat(data["created_at"]).utcoffset() == timedelta(0)
    assert "+00:00" in data["created_at"] or data["created_at"].endswith("Z")
    assert "error" not in data and "scheduled_for" not in data


def test_unknown_fields_are_kept() -> None:
    raw = record(tenant="acme", retry_after_ms=1500, tags=["a", "b"])
    job = Job.from_record(raw)
    assert job.extra == {"tenant": "acme", "retry_after_ms": 1500, "tags": ["a", "b"]}
    out = json.loads(job.to_record())
    assert out["tenant"] == "acme" and out["retry_after_ms"] == 1500 and out["tags"] == ["a", "b"]


@pytest.mark.parametrize("routing_key", ["", None, ...], ids=["empty", "null", "absent"])
def test_missing_or_empty_routing_key_means_default(routing_key: object) -> None:
    job = Job.from_record(record(routing_key=routing_key))
    assert job.routing_key == DEFAULT_ROUTING_KEY == "default"


def test_empty_optional_strings_mean_absent() -> None:
    job = Job.from_record(record(description="", error=""))
    assert job.description is None and job.error is None


def test_invalid_routing_key_in_record_is_malformed() -> None:
    with pytest.raises(MalformedJobError, match="routing key"):
        Job.from_record(record(routing_key="a b"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-10T04:16:33Z", datetime(2025, 11, 10, 4, 16, 33, tzinfo=UTC)),
        ("2025-11-10T04:16:33.123456789Z", datetime(2025, 11, 10, 4, 16, 33, 123456, tzinfo=UTC)),
        ("2025-11-10T04:16:33.123Z", datetime(2025, 11, 10, 4, 16, 33, 123000, tzinfo=UTC)),
        ("2025-11-10T09:46:33.5+05:30", datetime(2025, 11, 10, 4, 16, 33, 500000, tzinfo=UTC)),
        ("2025-11-11T10:00:00.123456+00:00", datetime(2025, 11, 11, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2025-11-10T04:16:33-07:00", datetime(2025, 11, 10, 11, 16, 33, tzinfo=UTC)),
    ],
)
def test_times_in_every_producer_form(text: str, expected: datetime) -> None:
    job = Job.from_record(record(created_at=text, updated_at=text, scheduled_for=text))
    for value in (job.created_at, job.updated_at, job.scheduled_for):
        assert value is not None and value.tzinfo is not None
        assert value == expected


def test_offset_is_preserved_on_write() -> None:
    job = Job.from_record(record(created_at="2025-11-10T09:46:33.5+05:30"))
    assert job.created_at.utcoffset() == timedelta(hours=5, minutes=30)
    written = json.loads(job.to_record())["created_at"]
    assert datetime.fromisoformat(written) == job.created_at
    assert written.endswith("+05:30")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json{", "not valid JSON"),
        (b"[1, 2, 3]", "not an object"),
        (b'"a string"', "not an object"),
        (json.dumps({"name": "x", "created_at": "2025-11-10T04:16:33Z"}).encode(), "no id"),
        (record(name=...), "no job name"),
        (record(priority="urgent"), "priority"),
        (record(created_at="yesterday"), "invalid field"),
    ],
)
def test_malformed_records_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedJobError, match=reason):
        Job.from_record(raw)


def test_record_id_must_match_its_key() -> None:
    with pytest.raises(MalformedJobError, match="does not match"):
        Job.from_record(record(), job_id="some-other-id")


def test_set_routing_key_validates_and_bumps_updated_at() -> None:
    job = make_job()
    before = job.updated_at
    job.set_routing_key("email")
    assert job.routing_key == "email"
    assert job.updated_at > before

    later = datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    job.set_routing_key("gpu", now=later)
    assert job.routing_key == "gpu" and job.updated_at == later

    with pytest.raises(InvalidRoutingKeyError, match="a/b"):
        job.set_routing_key("a/b")
    assert job.routing_key == "gpu" and job.updated_at == later


def test_new_job_defaults() -> None:
    job = new_job("noop", None, "low", "default", now=NOW)
    assert job.status is JobStatus.PENDING and job.priority is Priority.LOW
    assert job.attempts == 0 and job.max_retries == 3
    assert job.created_at == job.updated_at == NOW
    assert len(job.id) == 36


def test_job_ids_are_random_version_4_uuids() -> None:
    import uuid

    from bananas.core.job import new_job_id, new_job_ids

    ids = [new_job_id(), *new_job_ids(300)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert new_job_ids(0) == []
