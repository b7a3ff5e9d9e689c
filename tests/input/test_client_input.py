"""Bad input through ``Client`` and ``AsyncClient``: a clear error naming what is wrong,
and nothing written (the whole keyspace is compared before and after)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from input_helpers import snapshot

from bananas import (
    AsyncClient,
    Client,
    InvalidPriorityError,
    InvalidRoutingKeyError,
    PayloadError,
    Priority,
    ValidationError,
)
from bananas.core.codec import DEFAULT_MAX_PAYLOAD_BYTES
from bananas.embedded import EmbeddedServer

RULE = "1 to 64 characters of A-Z a-z 0-9 _ -"


@dataclass(frozen=True)
class Case:
    method: str  # submit_job | schedule_job | submit_many | submit_job_with_route
    kwargs: dict[str, Any]
    error: type[Exception]
    message: str


def circular() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


# (None is not here: it means "the route table's choice, else default".)
BAD_ROUTING_KEYS = ["", "x" * 65, "a b", "a/b", "a.b", "{a}", "ключ", "a\x00b", "gpu\n", 5, b"gpu"]

CASES: dict[str, Case] = {}
for key in BAD_ROUTING_KEYS:
    message = "must be a string" if not isinstance(key, str) else repr(key)
    CASES[f"routing_key={key!r}"[:40]] = Case("submit_job", {"routing_key": key}, InvalidRoutingKeyError, message)
    CASES[f"schedule routing_key={key!r}"[:40]] = Case(
        "schedule_job", {"routing_key": key, "delay": 5}, InvalidRoutingKeyError, message
    )
    CASES[f"many routing_key={key!r}"[:40]] = Case("submit_many", {"routing_key": key}, InvalidRoutingKeyError, message)
CASES["with_route routing_key='a.b'"] = Case(
    "submit_job_with_route", {"routing_key": "a.b"}, InvalidRoutingKeyError, "'.'"
)

for prio in ["urgent", "", 1, "HIGHEST", b"high"]:
    CASES[f"priority={prio!r}"] = Case("submit_job", {"priority": prio}, InvalidPriorityError, "unknown priority")
    CASES[f"many priority={prio!r}"] = Case("submit_many", {"priority": prio}, InvalidPriorityError, "unknown priority")

for label, payload in {
    "object": object(),
    "set": {1, 2},
    "bytes": b"raw",
    "int keys": {1: "a"},
    "int > 64 bit": 2**70,
    "circular": circular(),
    "lone surrogate": "\ud800",
}.items():
    CASES[f"payload {label}"] = Case("submit_job", {"payload": payload}, PayloadError, "not JSON-serializable")
    CASES[f"schedule payload {label}"] = Case(
        "schedule_job", {"payload": payload, "delay": 1}, PayloadError, "not JSON-serializable"
    )

for label, payload in {
    "nan": math.nan,
    "inf": math.inf,
    "-inf in a list": [1, -math.inf],
    "nan nested": {"a": {"b": [0.5, math.nan]}},
}.items():
    CASES[f"payload {label}"] = Case("submit_job", {"payload": payload}, PayloadError, "NaN or Infinity")

too_big = "x" * DEFAULT_MAX_PAYLOAD_BYTES  # plus two quotes when encoded
CASES["payload above 1 MiB"] = Case(
    "submit_job", {"payload": too_big}, PayloadError, f"above the limit of {DEFAULT_MAX_PAYLOAD_BYTES} bytes"
)
CASES["many: one payload above 1 MiB"] = Case(
    "submit_many", {"payloads": [1, 2, too_big, 4]}, PayloadError, "payloads[2]: payload is"
)
CASES["many: one NaN among good ones"] = Case("submit_many", {"payloads": [1, math.nan]}, PayloadError, "payloads[1]")
CASES["many: payloads is a dict"] = Case("submit_many", {"payloads": {"a": 1}}, ValidationError, "must be a list")
CASES["many: payloads is a string"] = Case("submit_many", {"payloads": "abc"}, ValidationError, "must be a list")

for delay, message in [
    (-1, "finite number of seconds >= 0"),
    (-0.001, "finite number of seconds >= 0"),
    (math.nan, "finite number"),
    (math.inf, "finite number"),
    (11 * 366 * 24 * 3600, "more than ten years"),
    (timedelta(seconds=-5), ">= 0"),
    (timedelta.max, "more than ten years"),
    (True, "seconds or a timedelta"),
    ("5", "seconds or a timedelta"),
]:
    CASES[f"delay={delay!r}"[:40]] = Case("schedule_job", {"delay": delay}, ValidationError, message)
CASES["run_at and delay"] = Case(
    "schedule_job", {"delay": 5, "run_at": datetime.now(UTC)}, ValidationError, "either run_at or delay"
)
CASES["run_at naive"] = Case("schedule_job", {"run_at": datetime(2030, 1, 1)}, ValidationError, "timezone-aware")
CASES["run_at in 20 years"] = Case(
    "schedule_job", {"run_at": datetime.now(UTC) + timedelta(days=20 * 366)}, ValidationError, "ten years"
)
CASES["run_at not a datetime"] = Case("schedule_job", {"run_at": "2030-01-01"}, ValidationError, "must be a datetime")
CASES["neither run_at nor delay"] = Case("schedule_job", {}, ValidationError, "needs run_at or delay")

for retries in [-1, 1.5, "3", True, None, 2**40]:
    message = "at most" if retries == 2**40 else "max_retries must be an integer >= 0"
    CASES[f"max_retries={retries!r}"] = Case("submit_job", {"max_retries": retries}, ValidationError, message)
CASES["many max_retries=-1"] = Case("submit_many", {"max_retries": -1}, ValidationError, "max_retries")
CASES["schedule max_retries=-3"] = Case("schedule_job", {"max_retries": -3, "delay": 1}, ValidationError, "max_retries")

for name, message in [
    ("", "non-empty string"),
    (None, "non-empty string"),
    (b"task", "non-empty string"),
    ("x" * 257, "the maximum is 256"),
    ("task\udc80", "job name is not valid text"),
]:
    CASES[f"name={name!r}"[:40]] = Case("submit_job", {"name": name}, ValidationError, message)
    CASES[f"many name={name!r}"[:40]] = Case("submit_many", {"name": name}, ValidationError, message)
for description, message in [
    (5, "description must be a string"),
    ("\ud800", "description is not valid text"),
    ("d" * (64 * 1024 + 1), "the maximum is 65536"),
]:
    CASES[f"description={description!r}"[:40]] = Case(
        "submit_job", {"description": description}, ValidationError, message
    )


def call_args(case: Case) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    kwargs = dict(case.kwargs)
    name = kwargs.pop("name", "task")
    if case.method == "submit_many":
        payloads = kwargs.pop("payloads", [{"n": 1}, {"n": 2}])
        return case.method, (name, payloads), kwargs
    payload = kwargs.pop("payload", {"n": 1})
    if case.method == "submit_job_with_route":
        return case.method, (name, payload, kwargs.pop("priority", Priority.NORMAL), kwargs.pop("routing_key")), {}
    return case.method, (name, payload), kwargs


def check_error(exc: BaseException, case: Case) -> None:
    assert isinstance(exc, case.error), f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, ValidationError) and isinstance(exc, ValueError)
    assert case.message in str(exc), str(exc)
    if isinstance(exc, InvalidRoutingKeyError):
        assert RULE in str(exc)


@pytest.fixture(scope="module")
def seeded_server(redis_server: EmbeddedServer) -> Iterator[tuple[redis.Redis, Client]]:
    """One keyspace with a little of everything, shared by the catalogue (each test
    compares its own before and after, so "nothing written" means something)."""
    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    client = Client(redis_server.url)
    client.submit_job("seed", {"n": 0}, routing_key="gpu")
    client.schedule_job("seed", None, delay=60)
    r.lpush("bananas:queue:dead", "old-dead")
    yield r, client
    client.close()
    r.close()


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_client_rejects_and_writes_nothing(case: Case, seeded_server: tuple[redis.Redis, Client]) -> None:
    r, client = seeded_server
    before = snapshot(r)
    method, args, kwargs = call_args(case)
    with pytest.raises(ValidationError) as info:
        getattr(client, method)(*args, **kwargs)
    check_error(info.value, case)
    assert snapshot(r) == before


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_async_client_rejects_and_writes_nothing(
    case: Case, seeded_server: tuple[redis.Redis, Client], redis_server: EmbeddedServer
) -> None:
    r, _ = seeded_server
    before = snapshot(r)
    method, args, kwargs = call_args(case)
    async with AsyncClient(redis_server.url) as client:
        with pytest.raises(ValidationError) as info:
            await getattr(client, method)(*args, **kwargs)
    check_error(info.value, case)
    assert snapshot(r) == before


@pytest.fixture
def seeded(r: redis.Redis, redis_url: str) -> redis.Redis:
    with Client(redis_url) as client:
        client.submit_job("seed", {"n": 0}, routing_key="gpu")
    return r


def test_the_payload_limit_is_configurable_per_client(seeded: redis.Redis, redis_url: str) -> None:
    before = snapshot(seeded)
    with Client(redis_url, max_payload_bytes=100) as small:
        with pytest.raises(PayloadError, match="is 202 bytes encoded, above the limit of 100 bytes"):
            small.submit_job("task", "y" * 200)
        with pytest.raises(PayloadError, match=r"payloads\[1\]"):
            small.submit_many("task", ["ok", "y" * 200])
        assert snapshot(seeded) == before
        assert small.get_job(small.submit_job("task", "y" * 50)) is not None
    with Client(redis_url, max_payload_bytes=None) as unlimited:
        job_id = unlimited.submit_job("task", "z" * (DEFAULT_MAX_PAYLOAD_BYTES + 10))
        job = unlimited.get_job(job_id)
        assert job is not None and len(job.payload) == DEFAULT_MAX_PAYLOAD_BYTES + 10
    with Client(redis_url) as default:
        default.submit_job("task", "x" * (DEFAULT_MAX_PAYLOAD_BYTES - 2))  # exactly at the limit: accepted


@pytest.mark.parametrize("limit", [0, -1, True, "1MB", 1.5])
def test_a_bad_payload_limit_is_refused_at_construction(limit: Any, redis_url: str) -> None:
    with pytest.raises(ValidationError, match="max_payload_bytes must be a whole number of bytes >= 1"):
        Client(redis_url, max_payload_bytes=limit)
    with pytest.raises(ValidationError, match="max_payload_bytes"):
        AsyncClient(redis_url, max_payload_bytes=limit)


def test_good_edge_values_are_accepted(r: redis.Redis, redis_url: str) -> None:
    """The other side of the rule: the limits themselves are valid."""
    with Client(redis_url) as client:
        for key in ["a", "x" * 64, "A-z_0-9", "-", "_"]:
            client.submit_job("task", None, routing_key=key)
        client.submit_job("n" * 256, [1.5, -0.0, 2**63 - 1, "ünïcødé ✓", {"nested": [None, True]}])
        client.schedule_job("task", None, delay=0)
        client.schedule_job("task", None, delay=timedelta(days=3650))
        client.submit_job("task", None, max_retries=0)
        client.submit_job("task", None, description="d" * 65536)
        assert client.submit_many("task", []) == []
    assert r.llen("bananas:route:" + "x" * 64 + ":queue:normal") == 1
