"""Property-based tests: the job record round trip and the routing-key rule."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bananas import InvalidRoutingKeyError, Job, JobStatus, Priority, validate_routing_key
from bananas.core.job import _KNOWN, new_job
from bananas.redis import keys

ALLOWED = frozenset(string.ascii_letters + string.digits + "_-")
RULE = "1 to 64 characters of A-Z a-z 0-9 _ -"


def is_valid_routing_key(key: str) -> bool:
    """An oracle written independently of the implementation's regex."""
    return 1 <= len(key) <= 64 and all(ch in ALLOWED for ch in key)


routing_keys = st.text(alphabet=sorted(ALLOWED), min_size=1, max_size=64)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)  # aware, microsecond precision
extra_names = st.text(min_size=1, max_size=12).filter(lambda k: k not in _KNOWN)
extra_fields = st.dictionaries(extra_names, json_values, max_size=4)


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    created = draw(instants)
    return Job(
        id=draw(st.uuids()).hex if draw(st.booleans()) else str(draw(st.uuids())),
        name=draw(st.text(min_size=1, max_size=40)),
        payload=draw(json_values),
        priority=draw(st.sampled_from(Priority)),
        routing_key=draw(routing_keys),
        status=draw(st.sampled_from(JobStatus)),
        created_at=created,
        updated_at=draw(instants),
        attempts=draw(st.integers(min_value=0, max_value=2**31 - 1)),
        max_retries=draw(st.integers(min_value=0, max_value=2**31 - 1)),
        description=draw(st.none() | st.text(min_size=1, max_size=50)),
        scheduled_for=draw(st.none() | instants),
        error=draw(st.none() | st.text(min_size=1, max_size=200)),
        extra=draw(extra_fields),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs())
def test_job_record_round_trip(job: Job) -> None:
    record = job.to_record()
    back = Job.from_record(record, job_id=job.id)
    assert back == job
    assert back.extra == job.extra  # unknown fields survive untouched
    assert back.to_record() == record  # and the bytes are stable


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs(), st.sampled_from(["", None]))
def test_absent_or_empty_routing_key_reads_as_default(job: Job, written: Any) -> None:
    data = job.to_dict()
    if written is None:
        del data["routing_key"]
    else:
        data["routing_key"] = written
    assert Job.from_dict(data).routing_key == "default"


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(min_size=1, max_size=256),
    payload=json_values,
    priority=st.sampled_from([*Priority, "high", "NORMAL", " low "]),
    routing_key=routing_keys,
    max_retries=st.integers(min_value=0, max_value=1000),
)
def test_new_jobs_round_trip(name: str, payload: Any, priority: Any, routing_key: str, max_retries: int) -> None:
    job = new_job(name, payload, priority, routing_key, now=datetime.now(UTC), max_retries=max_retries)
    back = Job.from_record(job.to_record())
    assert (back.name, back.payload, back.routing_key, back.max_retries) == (name, payload, routing_key, max_retries)
    assert back.priority is Priority.parse(priority) and back.status is JobStatus.PENDING and back.attempts == 0


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80) | st.text(alphabet=[*sorted(ALLOWED), " ", ".", "/", ":", "{", "é", "\x00"], max_size=70))
def test_routing_key_valid_iff_it_matches_the_rule(key: str) -> None:
    if is_valid_routing_key(key):
        assert validate_routing_key(key) == key
        # Embedded in a Redis key, it cannot add a segment or a cluster hash tag.
        assert keys.route_queue(key, Priority.HIGH).split(":") == ["bananas", "route", key, "queue", "high"]
    else:
        with pytest.raises(InvalidRoutingKeyError) as info:
            validate_routing_key(key)
        assert repr(key) in str(info.value) and RULE in str(info.value)


@settings(max_examples=200, deadline=None)
@given(routing_keys)
def test_every_key_of_the_allowed_alphabet_is_valid(key: str) -> None:
    assert validate_routing_key(key) == key


@settings(max_examples=200, deadline=None)
@given(routing_keys, st.characters().filter(lambda ch: ch not in ALLOWED), st.integers(min_value=0, max_value=64))
def test_one_foreign_character_makes_any_key_invalid_at_submit(key: str, foreign: str, position: int) -> None:
    bad = key[:position] + foreign + key[position:]
    with pytest.raises(InvalidRoutingKeyError, match=r"contains the character|characters long"):
        new_job("task", None, Priority.NORMAL, bad, now=datetime.now(UTC))
