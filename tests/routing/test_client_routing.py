"""Route tables in Client and AsyncClient, against the real test server: where jobs land."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis

from bananas import (
    AsyncClient,
    Client,
    Job,
    JobTimeoutError,
    Priority,
    Registry,
    Router,
    RouteTableError,
    Worker,
    WorkerSettings,
)


def by_tenant(name: str, payload: Any) -> str | None:
    return f"tenant_{payload['tenant']}" if isinstance(payload, dict) and "tenant" in payload else None


def make_router() -> Router:
    return (
        Router()
        .route("send_email", "email")
        .route("image.*", "gpu", Priority.HIGH)
        .route(re.compile(r"report\.(daily|weekly)"), "reports", "low")
        .route(by_tenant)
    )


def ids_in(r: redis.Redis, routing_key: str, priority: str) -> list[str]:
    """Ids in a ready list, oldest first (producers LPUSH, workers RPOP)."""
    return [v.decode() for v in reversed(r.lrange(f"bananas:route:{routing_key}:queue:{priority}", 0, -1))]


def record(r: redis.Redis, job_id: str) -> dict[str, Any]:
    raw = r.get(f"bananas:job:{job_id}")
    assert raw is not None
    data: dict[str, Any] = json.loads(raw)
    return data


def calls(r: redis.Redis, *commands: str) -> int:
    stats = r.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in commands)


@pytest.fixture
def client(redis_url: str) -> Any:
    with Client(redis_url, router=make_router()) as c:
        yield c


# -- where single jobs land --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "payload", "queue"),
    [
        ("send_email", {}, ("email", "normal")),
        ("image.resize", {}, ("gpu", "high")),
        ("report.daily", {}, ("reports", "low")),
        ("invoice", {"tenant": "acme"}, ("tenant_acme", "normal")),
        ("invoice", {}, ("default", "normal")),
    ],
)
def test_submit_job_lands_in_the_routed_queue(
    client: Client, r: redis.Redis, name: str, payload: Any, queue: tuple[str, str]
) -> None:
    job_id = client.submit_job(name, payload)
    assert ids_in(r, *queue) == [job_id]
    rec = record(r, job_id)
    assert (rec["routing_key"], rec["priority"]) == queue
    assert r.sismember("bananas:routing_keys", queue[0])  # visible to ``bananas queues``


@pytest.mark.parametrize(
    ("kwargs", "queue"),
    [
        ({}, ("gpu", "high")),  # the table decides both
        ({"routing_key": "cpu"}, ("cpu", "high")),  # explicit key, the rule's priority
        ({"priority": "low"}, ("gpu", "low")),  # the rule's key, explicit priority
        ({"routing_key": "cpu", "priority": "normal"}, ("cpu", "normal")),
        ({"routing_key": "default"}, ("default", "high")),  # "default" given is explicit
        ({"priority": Priority.NORMAL}, ("gpu", "normal")),  # normal given is explicit
    ],
)
def test_explicit_beats_table_beats_default(
    client: Client, r: redis.Redis, kwargs: dict[str, Any], queue: tuple[str, str]
) -> None:
    job_id = client.submit_job("image.resize", {"w": 1}, **kwargs)
    assert ids_in(r, *queue) == [job_id]


def test_no_rule_and_no_router_mean_default_normal(redis_url: str, r: redis.Redis, client: Client) -> None:
    unmatched = client.submit_job("unrouted", None)
    with Client(redis_url, router=Router()) as plain:
        empty_table = plain.submit_job("image.resize", None)
    assert ids_in(r, "default", "normal") == [unmatched, empty_table]


def test_submit_job_with_route_is_always_explicit(client: Client, r: redis.Redis) -> None:
    job_id = client.submit_job_with_route("image.resize", {}, Priority.LOW, "cpu")
    assert ids_in(r, "cpu", "low") == [job_id]
    assert ids_in(r, "gpu", "high") == []


def test_schedule_job_keeps_the_routed_key(client: Client, r: redis.Redis) -> None:
    job_id = client.schedule_job("image.resize", {}, delay=3600)
    explicit = client.schedule_job("image.resize", {}, delay=3600, routing_key="cpu", priority="low")
    assert r.zscore("bananas:queue:scheduled", job_id) is not None
    assert (record(r, job_id)["routing_key"], record(r, job_id)["priority"]) == ("gpu", "high")
    assert (record(r, explicit)["routing_key"], record(r, explicit)["priority"]) == ("cpu", "low")
    assert record(r, job_id)["status"] == "scheduled"


def test_callable_answer_is_validated_and_nothing_is_written(redis_url: str, r: redis.Redis) -> None:
    router = Router().route("x", "fine").route(lambda name, payload: payload)
    with Client(redis_url, router=router) as c:
        with pytest.raises(RouteTableError, match=r"rule #2 \(callable .*\): returned a bad routing key for job 'y'"):
            c.submit_job("y", "bad key")
        with pytest.raises(RouteTableError):
            c.submit_many("y", ["ok", "ok", "bad:key"])
    assert r.dbsize() == 0


# -- bulk ---------------------------------------------------------------------------


def test_submit_many_groups_by_routed_queue_in_one_round_trip(client: Client, r: redis.Redis) -> None:
    client.submit_job("warm", None)  # scripts loaded, so the count below is exact
    r.delete("bananas:route:default:queue:normal")
    payloads = [{"tenant": ["a", "b", "c"][i % 3], "i": i} for i in range(30)] + [{"i": 99}]
    scripts, transactions = calls(r, "evalsha", "eval"), calls(r, "exec")
    ids = client.submit_many("invoice", payloads)
    assert calls(r, "evalsha", "eval") - scripts == 4  # one script call per queue ...
    assert calls(r, "exec") - transactions == 1  # ... all sent in one MULTI/EXEC
    assert len(ids) == len(set(ids)) == 31
    for tenant in "abc":
        expected = [ids[i] for i in range(30) if payloads[i]["tenant"] == tenant]
        assert ids_in(r, f"tenant_{tenant}", "normal") == expected  # FIFO within each queue
    assert ids_in(r, "default", "normal") == [ids[30]]
    for job_id, payload in zip(ids, payloads, strict=True):
        assert record(r, job_id)["payload"] == payload  # ids come back in payload order


def test_submit_many_name_rules_and_precedence(client: Client, r: redis.Redis) -> None:
    routed = client.submit_many("image.crop", [1, 2, 3])
    assert ids_in(r, "gpu", "high") == routed
    keyed = client.submit_many("image.crop", [4], routing_key="cpu")
    prioritised = client.submit_many("image.crop", [5], "low")
    assert ids_in(r, "cpu", "high") == keyed
    assert ids_in(r, "gpu", "low") == prioritised


def test_submit_many_large_batch_across_groups_and_chunks(client: Client, r: redis.Redis) -> None:
    payloads = [{"tenant": "big"} if i % 2 else {"n": i} for i in range(2500)]
    ids = client.submit_many("invoice", payloads)
    assert r.llen("bananas:route:tenant_big:queue:normal") == 1250
    assert r.llen("bananas:route:default:queue:normal") == 1250
    assert ids_in(r, "tenant_big", "normal")[0] == ids[1]


# -- submit_and_wait ----------------------------------------------------------------


def test_submit_and_wait_is_routed(client: Client, r: redis.Redis) -> None:
    # No worker listens: the wait times out, and the job waits in the routed queue.
    with pytest.raises(JobTimeoutError) as caught:
        client.submit_and_wait("report.weekly", {}, timeout=0.2)
    assert ids_in(r, "reports", "low") == [caught.value.job_id]


async def test_async_submit_and_wait_runs_on_the_routed_pool(redis_url: str) -> None:
    registry = Registry()

    @registry.handler("image.resize")
    def resize(job: Job) -> dict[str, str]:
        return {"routing_key": job.routing_key, "priority": job.priority.value}

    settings = WorkerSettings(redis_url=redis_url, routing_keys=("gpu",), concurrency=2, shutdown_grace=5.0)
    worker = Worker(registry, settings)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.wait_ready(), 10)
        async with AsyncClient(redis_url, router=make_router()) as aclient:
            result = await aclient.submit_and_wait("image.resize", {"w": 2}, timeout=10)
        assert result == {"routing_key": "gpu", "priority": "high"}
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


# -- AsyncClient --------------------------------------------------------------------


async def test_async_client_routes_like_the_sync_client(redis_url: str, r: redis.Redis) -> None:
    async with AsyncClient(redis_url, router=make_router()) as aclient:
        email = await aclient.submit_job("send_email", {})
        image = await aclient.submit_job("image.resize", {})
        explicit = await aclient.submit_job("image.resize", {}, routing_key="cpu", priority="low")
        routed = await aclient.submit_job_with_route("send_email", {}, "low", "bulk")
        scheduled = await aclient.schedule_job("report.daily", {}, delay=3600)
        many = await aclient.submit_many("invoice", [{"tenant": "a"}, {"tenant": "b"}, {"tenant": "a"}])
    assert ids_in(r, "email", "normal") == [email]
    assert ids_in(r, "gpu", "high") == [image]
    assert ids_in(r, "cpu", "low") == [explicit]
    assert ids_in(r, "bulk", "low") == [routed]
    assert (record(r, scheduled)["routing_key"], record(r, scheduled)["priority"]) == ("reports", "low")
    assert ids_in(r, "tenant_a", "normal") == [many[0], many[2]]
    assert ids_in(r, "tenant_b", "normal") == [many[1]]


# -- BANANAS_ROUTES ----------------------------------------------------------------


def test_clients_load_the_table_named_by_bananas_routes(
    redis_url: str, r: redis.Redis, table_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # for callable = "routing_rules:by_tenant"
    monkeypatch.setenv("BANANAS_ROUTES", str(table_file))
    with Client(redis_url) as c:
        assert c.router is not None and c.router.source == str(table_file)
        gpu = c.submit_job("image.resize", {})
        tenant = c.submit_job("invoice", {"tenant": "acme"})
    with Client(redis_url, router=Router()) as opted_out:
        plain = opted_out.submit_job("image.resize", {})
    assert ids_in(r, "gpu", "high") == [gpu]
    assert ids_in(r, "tenant_acme", "normal") == [tenant]
    assert ids_in(r, "default", "normal") == [plain]


async def test_async_client_loads_bananas_routes(
    redis_url: str, r: redis.Redis, table_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setenv("BANANAS_ROUTES", str(table_file))
    async with AsyncClient(redis_url) as aclient:
        job_id = await aclient.submit_job("send_email", {})
    assert ids_in(r, "email", "normal") == [job_id]


def test_a_bad_table_fails_at_construction(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[route]]\nname = "a"\nrouting_key = "ok"\n\n[[route]]\nglob = "x.*"\nrouting_key = "no way"\n')
    monkeypatch.setenv("BANANAS_ROUTES", str(bad))
    with pytest.raises(RouteTableError, match=r"rule #2 \(glob 'x\.\*'\): invalid routing key 'no way'"):
        Client(redis_url)
    with pytest.raises(RouteTableError, match="rule #2"):
        AsyncClient(redis_url)
    monkeypatch.setenv("BANANAS_ROUTES", str(tmp_path / "missing.toml"))
    with pytest.raises(RouteTableError, match="cannot read the file"):
        Client(redis_url)
