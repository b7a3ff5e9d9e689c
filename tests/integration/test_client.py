"""Client and AsyncClient: what they write, bulk submission, and bad input that writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from support import strings

from bananas import AsyncClient, Client, InvalidPriorityError, InvalidRoutingKeyError, PayloadError, Priority
from bananas.errors import ValidationError


def evalsha_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def test_submit_job_writes_record_and_queue(client: Client, r: redis.Redis) -> None:
    job_id = client.submit_job("process_image", {"w": 2, "h": 3}, Priority.HIGH, routing_key="gpu", description="d")
    record = json.loads(r.get(f"bananas:job:{job_id}"))  # type: ignore[arg-type]
    assert record["id"] == job_id and record["name"] == "process_image" and record["payload"] == {"w": 2, "h": 3}
    assert record["status"] == "pending" and record["priority"] == "high" and record["routing_key"] == "gpu"
    assert record["attempts"] == 0 and record["max_retries"] == 3 and record["description"] == "d"
    assert datetime.fromisoformat(record["created_at"]).tzinfo is not None
    assert strings(r.lrange("bananas:route:gpu:queue:high", 0, -1)) == [job_id]

    routed = client.submit_job_with_route("send_email", {"to": "a@b.c"}, Priority.NORMAL, "email")
    assert strings(r.lrange("bananas:route:email:queue:normal", 0, -1)) == [routed]
    job = client.get_job(routed)
    assert job is not None and job.status == "pending" and job.routing_key == "email"
    assert client.get_job("does-not-exist") is None


def test_submit_many_one_round_trip(client: Client, r: redis.Redis) -> None:
    client.submit_job("warm", None)  # scripts loaded, so the count below is exact
    before = evalsha_calls(r)
    ids = client.submit_many("task", [{"i": i} for i in range(200)], "low", routing_key="email")
    assert evalsha_calls(r) - before == 1
    assert len(ids) == len(set(ids)) == 200
    assert strings(r.lrange("bananas:route:email:queue:low", 0, -1)) == list(reversed(ids))  # FIFO
    for i, job_id in enumerate(ids[:5]):
        job = client.get_job(job_id)
        assert job is not None and job.payload == {"i": i} and job.routing_key == "email" and job.priority == "low"


def test_submit_many_large_batch(client: Client, r: redis.Redis) -> None:
    ids = client.submit_many("task", list(range(2500)))
    assert r.llen("bananas:route:default:queue:normal") == 2500
    assert strings(r.lrange("bananas:route:default:queue:normal", -1, -1)) == [ids[0]]
    assert client.submit_many("task", []) == []


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        ([1, 2, object()], "payloads[2]"),
        ([{"ok": 1}, {"x": float("nan")}], "NaN"),
        ([1, {"bad": {1, 2}}], "payloads[1]"),
        ("not a list", "list"),
    ],
)
def test_submit_many_is_all_or_nothing(client: Client, r: redis.Redis, payloads: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        client.submit_many("task", payloads)
    assert r.dbsize() == 0


NOW = datetime.now(UTC)

# (description, method, args, kwargs, exception type, words the message must contain)
BAD_INPUT: list[tuple[str, str, tuple[Any, ...], dict[str, Any], type[Exception], tuple[str, ...]]] = [
    ("routing key with space", "submit_job", ("t", 1), {"routing_key": "a b"}, InvalidRoutingKeyError, ("'a b'",)),
    ("empty routing key", "submit_job", ("t", 1), {"routing_key": ""}, InvalidRoutingKeyError, ("empty",)),
    ("routing key too long", "submit_job", ("t", 1), {"routing_key": "k" * 65}, InvalidRoutingKeyError, ("65",)),
    ("routing key with colon", "submit_job_with_route", ("t", 1, "high", "a:b"), {}, InvalidRoutingKeyError, ("':'",)),
    ("unknown priority", "submit_job", ("t", 1, "urgent"), {}, InvalidPriorityError, ("'urgent'",)),
    ("unserializable payload", "submit_job", ("t", object()), {}, PayloadError, ("JSON",)),
    ("set payload", "submit_job", ("t", {"a": {1, 2}}), {}, PayloadError, ("JSON",)),
    ("NaN payload", "submit_job", ("t", {"x": float("nan")}), {}, PayloadError, ("NaN",)),
    ("infinite payload", "submit_job", ("t", [float("inf")]), {}, PayloadError, ("Infinity",)),
    ("negative max_retries", "submit_job", ("t", 1), {"max_retries": -1}, ValidationError, ("max_retries",)),
    ("empty name", "submit_job", ("", 1), {}, ValidationError, ("name",)),
    ("both run_at and delay", "schedule_job", ("t", 1), {"run_at": NOW, "delay": 5}, ValidationError,
     ("run_at", "delay")),
    ("naive run_at", "schedule_job", ("t", 1), {"run_at": datetime.now()}, ValidationError, ("timezone",)),
    ("negative delay", "schedule_job", ("t", 1), {"delay": -1}, ValidationError, ("delay",)),
    ("negative timedelta", "schedule_job", ("t", 1), {"delay": timedelta(seconds=-1)}, ValidationError, ("delay",)),
    ("NaN delay", "schedule_job", ("t", 1), {"delay": float("nan")}, ValidationError, ("delay",)),
    ("neither run_at nor delay", "schedule_job", ("t", 1), {}, ValidationError, ("run_at", "delay")),
    ("scheduled bad routing key", "schedule_job", ("t", 1), {"delay": 1, "routing_key": "a/b"},
     InvalidRoutingKeyError, ("'a/b'",)),
    ("scheduled bad priority", "schedule_job", ("t", 1), {"delay": 1, "priority": "asap"}, InvalidPriorityError,
     ("'asap'",)),
    ("bulk bad routing key", "submit_many", ("t", [1, 2]), {"routing_key": "a.b"}, InvalidRoutingKeyError, ("'a.b'",)),
    ("bulk bad priority", "submit_many", ("t", [1, 2], "urgent"), {}, InvalidPriorityError, ("'urgent'",)),
]  # fmt: skip


def check_error(exc: BaseException, expected: type[Exception], words: tuple[str, ...]) -> None:
    assert isinstance(exc, expected) and isinstance(exc, ValueError)
    for word in words:
        assert word in str(exc), f"{word!r} not in {exc}"


@pytest.mark.parametrize(("method", "args", "kwargs", "expected", "words"), [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])  # fmt: skip
def test_bad_input_sync_client_writes_nothing(
    client: Client, r: redis.Redis, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
    expected: type[Exception], words: tuple[str, ...],
) -> None:  # fmt: skip
    call: Callable[..., Any] = getattr(client, method)
    with pytest.raises(ValueError) as info:
        call(*args, **kwargs)
    check_error(info.value, expected, words)
    assert r.dbsize() == 0


@pytest.mark.parametrize(("method", "args", "kwargs", "expected", "words"), [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])  # fmt: skip
async def test_bad_input_async_client_writes_nothing(
    redis_url: str, r: redis.Redis, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
    expected: type[Exception], words: tuple[str, ...],
) -> None:  # fmt: skip
    async with AsyncClient(redis_url) as aclient:
        with pytest.raises(ValueError) as info:
            await getattr(aclient, method)(*args, **kwargs)
    check_error(info.value, expected, words)
    assert r.dbsize() == 0


async def test_async_client_same_methods(redis_url: str, r: redis.Redis) -> None:
    async with AsyncClient(redis_url) as aclient:
        job_id = await aclient.submit_job("process_image", {"w": 1}, Priority.LOW, routing_key="gpu")
        routed = await aclient.submit_job_with_route("send_email", None, "high", "email")
        later = await aclient.schedule_job("task", None, delay=60, routing_key="gpu", priority="high")
        many = await aclient.submit_many("task", [1, 2, 3], routing_key="gpu")
        job = await aclient.get_job(job_id)
        scheduled = await aclient.get_job(later)
        stats = await aclient.queue_stats()
    assert job is not None and job.routing_key == "gpu" and job.priority == "low" and job.payload == {"w": 1}
    assert scheduled is not None and scheduled.status == "scheduled" and scheduled.scheduled_for is not None
    assert strings(r.lrange("bananas:route:email:queue:high", 0, -1)) == [routed]
    assert strings(r.lrange("bananas:route:gpu:queue:normal", 0, -1)) == list(reversed(many))
    assert stats.ready("gpu", "low") == 1 and stats.ready("gpu", "normal") == 3 and stats.scheduled == 1


def test_queue_stats(client: Client) -> None:
    client.submit_job("t", 1, "high", routing_key="gpu")
    client.submit_job("t", 1, "high", routing_key="gpu")
    client.submit_job("t", 1, "low", routing_key="email")
    client.schedule_job("t", 1, delay=60)
    stats = client.queue_stats()
    assert stats.ready("gpu", "high") == 2 and stats.ready("email", "low") == 1 and stats.ready("default", "high") == 0
    assert stats.scheduled == 1 and stats.processing == 0 and stats.dead == 0
