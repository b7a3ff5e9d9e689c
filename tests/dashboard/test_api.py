"""The JSON API under /api/v1/ against a real server: every endpoint, every error code,
auth and the body limit. Nothing is written on any error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
import redis
from dashboard_support import TOKEN, Served, eventually_async, job_keys

from bananas import Fail, Job, Registry, Router
from bananas.config import WorkerMode
from bananas.core.limits import Rate
from bananas.limits_admin import LimitsAdmin
from bananas.redis.runner import SyncRunner
from bananas.scheduler.definition import Schedule
from bananas.scheduler.store import register_call

# -- submit -------------------------------------------------------------------------------


def test_submit_returns_201_with_the_id_and_queues_the_job(api: httpx.Client, r: redis.Redis) -> None:
    reply = api.post("/api/v1/jobs", json={"name": "resize", "payload": {"w": 2}, "priority": "high",
                                           "routing_key": "gpu", "max_retries": 1})  # fmt: skip
    assert reply.status_code == 201
    job_id = reply.json()["id"]
    assert reply.json() == {"id": job_id}
    record = json.loads(r.get(f"bananas:job:{job_id}"))  # type: ignore[arg-type]
    assert (record["name"], record["payload"], record["priority"], record["routing_key"], record["max_retries"]) == (
        "resize", {"w": 2}, "high", "gpu", 1,
    )  # fmt: skip
    assert r.lrange("bananas:route:gpu:queue:high", 0, -1) == [job_id.encode()]


def test_submit_without_routing_key_applies_the_route_table(serve: Callable[..., Served], r: redis.Redis) -> None:
    served = serve(router=Router().route("send_*", "email", "low"))
    with served.http() as api:
        routed = api.post("/api/v1/jobs", json={"name": "send_welcome"}).json()["id"]
        explicit = api.post("/api/v1/jobs", json={"name": "send_welcome", "routing_key": "default"}).json()["id"]
    assert r.lrange("bananas:route:email:queue:low", 0, -1) == [routed.encode()]
    assert r.lrange("bananas:route:default:queue:low", 0, -1) == [explicit.encode()]


def test_submit_with_delay_schedules_and_expires_in_sets_expires_at(api: httpx.Client, r: redis.Redis) -> None:
    later = api.post("/api/v1/jobs", json={"name": "x", "delay": 60}).json()["id"]
    assert r.zscore("bananas:queue:scheduled", later) is not None
    job = api.get(f"/api/v1/jobs/{later}").json()
    assert job["status"] == "scheduled"
    assert job["location"]["place"] == "scheduled"
    expiring = api.post("/api/v1/jobs", json={"name": "x", "expires_in": 30}).json()["id"]
    assert "expires_at" in api.get(f"/api/v1/jobs/{expiring}").json()


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({}, "name", "missing"),
        ({"name": ""}, "name", "string_too_short"),
        ({"name": "x", "routing_key": "no:colons"}, "routing_key", "string_pattern_mismatch"),
        ({"name": "x", "priority": "urgent"}, "priority", "literal_error"),
        ({"name": "x", "delay": -1}, "delay", "greater_than_equal"),
        ({"name": "x", "max_retries": -1}, "max_retries", "greater_than_equal"),
        ({"name": "x", "max_retries": "three"}, "max_retries", "int_parsing"),
        ({"name": "x", "expires_in": 0}, "expires_in", "greater_than"),
        ({"name": "x", "colour": "red"}, "colour", "extra_forbidden"),
        ([1, 2], "body", "model_attributes_type"),
    ],
)
def test_invalid_submit_is_422_naming_field_and_rule(
    api: httpx.Client, r: redis.Redis, body: object, field: str, rule: str
) -> None:
    reply = api.post("/api/v1/jobs", json=body)
    assert reply.status_code == 422, reply.text
    errors = reply.json()["errors"]
    assert {"field": field, "rule": rule} == {k: errors[0][k] for k in ("field", "rule")}
    assert field in reply.json()["detail"]
    assert job_keys(r) == []


def test_a_payload_with_nan_is_422_on_payload(api: httpx.Client, r: redis.Redis) -> None:
    reply = api.post("/api/v1/jobs", content=b'{"name": "x", "payload": NaN}',
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] == "payload"
    assert job_keys(r) == []


def test_a_body_that_is_not_json_is_400(api: httpx.Client, r: redis.Redis) -> None:
    reply = api.post("/api/v1/jobs", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"] == "bad_request"
    assert reply.json()["errors"][0]["rule"] == "json_invalid"
    assert job_keys(r) == []


def test_a_body_over_one_mib_is_413_and_writes_nothing(api: httpx.Client, r: redis.Redis) -> None:
    big = json.dumps({"name": "x", "payload": "a" * (1024 * 1024)}).encode()
    reply = api.post("/api/v1/jobs", content=big, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413
    assert reply.json()["error"] == "too_large"

    def chunks() -> object:  # no Content-Length: the limit counts what arrives
        for _ in range(3):
            yield b"x" * (512 * 1024)

    streamed = api.post("/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})  # type: ignore[arg-type]
    assert streamed.status_code == 413
    assert job_keys(r) == []


def test_the_body_limit_is_a_setting(serve: Callable[..., Served], r: redis.Redis) -> None:
    with serve(max_body_bytes=100).http() as api:
        assert api.post("/api/v1/jobs", json={"name": "x", "payload": "a" * 200}).status_code == 413
        assert api.post("/api/v1/jobs", json={"name": "x"}).status_code == 201


# -- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", TOKEN[:-1]])
def test_writes_without_the_right_token_are_401_and_write_nothing(
    dash: Served, r: redis.Redis, token: str | None
) -> None:
    with dash.http(token) as api:
        reply = api.post("/api/v1/jobs", json={"name": "x"})
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == "Bearer"
        assert reply.json()["error"] == "unauthorized"
        assert api.post("/api/v1/routes/gpu/pause").status_code == 401
        assert api.post("/api/v1/dead/purge").status_code == 401
        assert api.delete("/api/v1/dead/abc").status_code == 401
        assert api.get("/api/v1/jobs/abc").status_code == 401  # reads too, without --public-read
        assert api.get("/metrics").status_code == 401
    assert r.keys("*") == []


def test_other_schemes_are_refused(dash: Served) -> None:
    with httpx.Client(base_url=dash.url, headers={"Authorization": f"Basic {TOKEN}"}) as api:
        assert api.get("/api/v1/limits").status_code == 401


def test_public_read_opens_reads_but_not_writes(serve: Callable[..., Served], r: redis.Redis) -> None:
    served = serve(public_read=True)
    with served.http(None) as anonymous:
        assert anonymous.get("/api/v1/limits").status_code == 200
        assert anonymous.get("/api/v1/dead").status_code == 200
        assert anonymous.post("/api/v1/jobs", json={"name": "x"}).status_code == 401
    assert job_keys(r) == []


def test_pages_health_and_schema_need_no_token(dash: Served) -> None:
    with dash.http(None) as anonymous:
        for path in ("/", "/workers", "/running", "/jobs", "/jobs/abc", "/dead", "/schedules", "/limits"):
            page = anonymous.get(path)
            assert page.status_code == 200, path
            assert "text/html" in page.headers["content-type"]
            assert "/static/dashboard.js" in page.text
        assert anonymous.get("/static/dashboard.js").status_code == 200
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ok"}
        schema = anonymous.get("/openapi.json").json()
        docs = anonymous.get("/docs")
        assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
        assert "http" not in docs.text.split("<body>")[0].replace("http-equiv", "")  # nothing from a CDN
        assert anonymous.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    for path in ("/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/result",
                 "/api/v1/jobs/{job_id}/cancel", "/api/v1/queues", "/api/v1/workers", "/api/v1/running",
                 "/api/v1/routes/{routing_key}/pause",
                 "/api/v1/routes/{routing_key}/resume", "/api/v1/dead", "/api/v1/dead/{job_id}/retry",
                 "/api/v1/dead/{job_id}", "/api/v1/dead/purge", "/api/v1/schedules", "/api/v1/limits"):  # fmt: skip
        assert path in schema["paths"], path
    assert "delete" in schema["paths"]["/api/v1/dead/{job_id}"]


# -- jobs ---------------------------------------------------------------------------------


def test_get_job_returns_the_record_and_where_it_is(api: httpx.Client) -> None:
    job_id = api.post("/api/v1/jobs", json={"name": "x", "routing_key": "gpu"}).json()["id"]
    job = api.get(f"/api/v1/jobs/{job_id}").json()
    assert (job["id"], job["status"], job["attempts"], job["routing_key"]) == (job_id, "pending", 0, "gpu")
    assert job["created_at"] and job["updated_at"]
    assert job["location"]["place"] == "ready"
    assert job["location"]["key"] == "bananas:route:gpu:queue:normal"
    assert job["location"]["ahead"] == 0
    assert "no live worker listens on 'gpu'" in job["location"]["reason"]
    second = api.post("/api/v1/jobs", json={"name": "x", "routing_key": "gpu"}).json()["id"]
    assert api.get(f"/api/v1/jobs/{job_id}").json()["location"]["ahead"] == 0  # still the next in line
    assert api.get(f"/api/v1/jobs/{second}").json()["location"]["ahead"] == 1
    api.post("/api/v1/routes/gpu/pause")
    assert "the routing key is paused" in api.get(f"/api/v1/jobs/{second}").json()["location"]["reason"]


def test_unknown_job_ids_are_404(api: httpx.Client) -> None:
    for reply in (api.get("/api/v1/jobs/nope"), api.get("/api/v1/jobs/nope/result"),
                  api.post("/api/v1/jobs/nope/cancel")):  # fmt: skip
        assert reply.status_code == 404
        assert reply.json()["error"] == "not_found"


def test_cancel_a_pending_job_then_again_is_409(api: httpx.Client, r: redis.Redis) -> None:
    job_id = api.post("/api/v1/jobs", json={"name": "x"}).json()["id"]
    assert api.get(f"/api/v1/jobs/{job_id}/result").json()["finished"] is False
    reply = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert reply.status_code == 200
    assert reply.json() == {"id": job_id, "cancelled": True}
    assert r.llen("bananas:route:default:queue:normal") == 0
    assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
    again = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json()["status"] == "cancelled"


async def test_result_of_a_completed_job(
    dash: Served, start_worker: Callable[..., object]
) -> None:
    registry = Registry()

    @registry.handler("double")
    def double(job: Job) -> int:
        return int(job.payload) * 2

    await start_worker(registry)  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=dash.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        job_id = (await api.post("/api/v1/jobs", json={"name": "double", "payload": 21})).json()["id"]

        async def finished() -> object:
            reply = (await api.get(f"/api/v1/jobs/{job_id}/result")).json()
            return reply if reply["finished"] else None

        result = await eventually_async(finished)
        assert (result["status"], result["result"], result["error"]) == ("completed", 42, None)
        assert (await api.get(f"/api/v1/jobs/{job_id}")).json()["location"]["place"] == "finished"


# -- dead letters ---------------------------------------------------------------------------


async def _dead_jobs(dash: Served, start_worker: Callable[..., object], r: redis.Redis) -> list[str]:
    """Five jobs killed by ``Fail``: three 'doomed' on default, two 'fragile' on gpu."""
    registry = Registry()

    @registry.handler("doomed")
    def doomed(job: Job) -> None:
        raise Fail("doomed from the start")

    @registry.handler("fragile")
    def fragile(job: Job) -> str:
        if r.exists("test:broken"):
            raise Fail("broken")
        r.rpush("test:ran", job.id)
        return "ok"

    r.set("test:broken", 1)
    worker = await start_worker(registry, routing_keys=("default", "gpu"))  # type: ignore[operator]
    ids = [dash.client.submit_job("doomed", i) for i in range(3)]
    ids += [dash.client.submit_job("fragile", i, routing_key="gpu") for i in range(2)]
    await eventually_async(lambda: r.llen("bananas:queue:dead") == 5)
    r.delete("test:broken")
    assert worker is not None
    return ids


async def test_dead_letters_list_filter_retry_delete_purge(
    dash: Served, start_worker: Callable[..., object], r: redis.Redis
) -> None:
    ids = await _dead_jobs(dash, start_worker, r)
    async with httpx.AsyncClient(base_url=dash.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        page = (await api.get("/api/v1/dead", params={"limit": 2})).json()
        assert page["total"] == 5 and len(page["items"]) == 2 and page["next_cursor"] == 2
        rest = (await api.get("/api/v1/dead", params={"limit": 10, "cursor": page["next_cursor"]})).json()
        assert rest["next_cursor"] is None
        assert sorted(e["id"] for e in page["items"] + rest["items"]) == sorted(ids)
        gpu = (await api.get("/api/v1/dead", params={"routing_key": "gpu"})).json()["items"]
        assert sorted(e["id"] for e in gpu) == sorted(ids[3:])
        named = (await api.get("/api/v1/dead", params={"name": "doomed", "limit": 2})).json()
        assert [e["name"] for e in named["items"]] == ["doomed", "doomed"] and named["next_cursor"] is not None
        shown = (await api.get(f"/api/v1/dead/{ids[3]}")).json()
        assert shown["error"].startswith("Fail") or "broken" in shown["error"]

        retried = await api.post(f"/api/v1/dead/{ids[3]}/retry")
        assert retried.status_code == 200 and retried.json()["queue"] == "bananas:route:gpu:queue:normal"
        await eventually_async(lambda: r.lrange("test:ran", 0, -1) == [ids[3].encode()])
        assert (await api.post(f"/api/v1/dead/{ids[3]}/retry")).status_code == 404

        assert (await api.delete(f"/api/v1/dead/{ids[0]}")).json() == {"id": ids[0], "deleted": True}
        assert r.get(f"bananas:job:{ids[0]}") is None
        assert (await api.delete(f"/api/v1/dead/{ids[0]}")).status_code == 404
        assert (await api.get(f"/api/v1/dead/{ids[0]}")).status_code == 404

        assert (await api.post("/api/v1/dead/purge", json={"routing_key": "gpu"})).json() == {"removed": 1}
        assert (await api.post("/api/v1/dead/purge", json={"routing_key": "a:b"})).status_code == 422
        assert (await api.post("/api/v1/dead/purge")).json() == {"removed": 2}
        assert r.llen("bananas:queue:dead") == 0


def test_retrying_an_expired_dead_letter_is_409(api: httpx.Client, r: redis.Redis) -> None:
    r.lpush("bananas:queue:dead", "gone")
    reply = api.post("/api/v1/dead/gone/retry")
    assert reply.status_code == 409
    assert reply.json()["reason"] == "record expired"


# -- schedules, limits, paging --------------------------------------------------------------


def test_schedules_and_limits(api: httpx.Client, r: redis.Redis) -> None:
    schedule = Schedule.create("*/5 * * * *", "cleanup", schedule_id="cleanup", routing_key="maintenance")
    SyncRunner(r).run(register_call(schedule, 0, 1_900_000_000, 1_800_000_000.0))
    page = api.get("/api/v1/schedules").json()
    assert page["total"] == 1
    assert (page["items"][0]["id"], page["items"][0]["job"], page["items"][0]["routing_key"]) == (
        "cleanup", "cleanup", "maintenance",
    )  # fmt: skip
    admin = LimitsAdmin(r)
    admin.set_route("gpu", concurrency=2, rate="10/s")
    admin.set_job("send_sms", rate="5/m")
    limits = api.get("/api/v1/limits").json()
    rate, sms = str(Rate.parse("10/s")), str(Rate.parse("5/m"))
    assert limits["routes"] == [{"routing_key": "gpu", "concurrency": 2, "rate": rate, "in_flight": 0}]
    assert limits["jobs"] == [{"name": "send_sms", "rate": sms}]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/schedules?limit=0", "limit"),
        ("/api/v1/schedules?limit=501", "limit"),
        ("/api/v1/dead?cursor=-1", "cursor"),
        ("/api/v1/dead?routing_key=a%20b", "routing_key"),
        ("/api/v1/overview?offset=x", "offset"),
    ],
)
def test_bad_query_parameters_are_422(api: httpx.Client, path: str, field: str) -> None:
    reply = api.get(path)
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] == field


def test_pause_with_a_bad_routing_key_or_priority_is_422(api: httpx.Client, r: redis.Redis) -> None:
    assert api.post("/api/v1/routes/a:b/pause").json()["errors"][0]["field"] == "routing_key"
    reply = api.post("/api/v1/routes/gpu/pause", json={"priority": "urgent"})
    assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "priority"
    assert r.keys("*") == []


# -- health --------------------------------------------------------------------------------


def test_readyz_is_503_with_a_reason_and_no_password(serve: Callable[..., Served]) -> None:
    with socket_closed_port() as port:
        served = serve(url=f"redis://user:s3cretpw@127.0.0.1:{port}/0")
        with served.http() as api:
            assert api.get("/healthz").status_code == 200
            reply = api.get("/readyz")
            assert reply.status_code == 503
            assert "Redis is not reachable" in reply.json()["reason"]
            assert "s3cretpw" not in reply.text
            failed = api.get("/api/v1/limits")
            assert failed.status_code == 503 and "s3cretpw" not in failed.text


def socket_closed_port() -> object:
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed() -> object:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        yield port

    return closed()


def test_threads_share_one_client(api: httpx.Client) -> None:
    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=str(api.base_url), headers=dict(api.headers)) as client:
            replies = await asyncio.gather(*(client.post("/api/v1/jobs", json={"name": "x"}) for _ in range(40)))
        return [reply.status_code for reply in replies]

    assert asyncio.run(burst()) == [201] * 40


# -- the overview and the fleet read model ----------------------------------------------


async def test_overview_rows_problems_paging_and_throughput(
    dash: Served, start_worker: Callable[..., object], r: redis.Redis
) -> None:
    registry = Registry()

    @registry.handler("render")
    def render(job: Job) -> None:
        r.rpush("test:ran", job.id)

    @registry.handler("hold")
    async def hold(job: Job) -> None:
        await asyncio.sleep(20)

    LimitsAdmin(r).set_route("slow", concurrency=1)
    # A thin worker runs no recoverer, so the lease that ran out stays for the overview to see.
    worker = await start_worker(registry, routing_keys=("gpu", "slow"), shutdown_grace=0.2,
                                mode=WorkerMode.THIN)  # type: ignore[operator]  # fmt: skip
    client = dash.client
    client.submit_many("render", [None] * 3, routing_key="gpu")
    await eventually_async(lambda: r.llen("test:ran") == 3)
    client.submit_many("hold", [None] * 3, routing_key="slow")
    client.submit_many("x", [None] * 2, "high", routing_key="email")
    client.submit_job("x", None, "low", routing_key="email")
    r.zadd("bananas:leases", {"lost-job": 1000})  # a lease that ran out long ago
    async with httpx.AsyncClient(base_url=dash.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:

        async def settled() -> object:
            data = (await api.get("/api/v1/overview")).json()
            rows = {row["routing_key"]: row for row in data["routes"]}
            return data if rows["slow"]["in_flight"] == 1 and sum(rows["gpu"]["throughput"]) == 3 else None

        data = await eventually_async(settled, timeout=15)
        by_key = {row["routing_key"]: row for row in data["routes"]}
        assert list(by_key) == ["default", "email", "gpu", "slow"]
        email = by_key["email"]
        assert (email["ready"], email["orphaned"], email["consumers"]) == (3, True, 0)
        assert email["priorities"]["high"]["ready"] == 2 and email["priorities"]["low"]["ready"] == 1
        assert email["oldest_age_seconds"] is not None
        assert len(by_key["gpu"]["throughput"]) == 15 and sum(by_key["gpu"]["throughput"]) == 3
        assert by_key["slow"]["ready"] == 2 and by_key["slow"]["consumers"] == 1
        kinds = {(p["kind"], p["routing_key"]) for p in data["problems"]}
        assert {("orphaned", "email"), ("limited", "slow"), ("expired_leases", None)} <= kinds
        assert data["totals"]["expired_leases"] == 1 and data["totals"]["workers"] == 1

        paged = (await api.get("/api/v1/overview", params={"offset": 1, "limit": 2})).json()
        assert [row["routing_key"] for row in paged["routes"]] == ["email", "gpu"]
        assert paged["routes_total"] == 4
        found = (await api.get("/api/v1/overview", params={"q": "LO"})).json()
        assert [row["routing_key"] for row in found["routes"]] == ["slow"]
        flagged = (await api.get("/api/v1/overview", params={"problems": "true"})).json()
        assert [row["routing_key"] for row in flagged["routes"]] == ["email", "slow"]

        queues = (await api.get("/api/v1/queues")).json()
        assert set(queues) == set(client.queue_stats().to_json())  # the document `bananas queues --json` prints
        assert [q["routing_key"] for q in queues["routes"]] == ["default", "email", "gpu", "slow"]
        assert {"routing_key", "ready", "in_flight", "consumers", "paused", "orphaned", "oldest_age_seconds"} <= set(
            queues["routes"][0]
        )
        workers = (await api.get("/api/v1/workers")).json()
        assert workers["total"] == 1 and workers["items"][0]["routing_keys"] == ["gpu", "slow"]
        assert (await api.get("/api/v1/workers", params={"routing_key": "email"})).json()["total"] == 0
        running = (await api.get("/api/v1/running", params={"routing_key": "slow"})).json()
        assert running["total"] == 1 and running["items"][0]["name"] == "hold"
        job_id = running["items"][0]["job_id"]
        assert (await api.get(f"/api/v1/jobs/{job_id}")).json()["location"]["place"] == "running"
        assert (await api.get("/api/v1/running", params={"name": "render"})).json()["total"] == 0

        paused = await api.post("/api/v1/routes/email/pause", json={"priority": "high"})
        assert paused.json() == {"routing_key": "email", "priority": "high", "paused": True}
        assert [(p.routing_key, p.priority) for p in client.paused()] == [("email", "high")]
        assert (await api.post("/api/v1/routes/email/pause")).status_code == 200
        row = next(row for row in (await api.get("/api/v1/overview")).json()["routes"] if row["routing_key"] == "email")
        assert row["paused"] is True and row["priorities"]["high"]["paused"] is True
        await api.post("/api/v1/routes/email/resume")
        await api.post("/api/v1/routes/email/resume", json={"priority": "high"})
        assert client.paused() == []
    assert worker is not None


def test_mounted_in_another_asgi_app(redis_url: str) -> None:
    from dashboard_support import ServerThread
    from fastapi import FastAPI

    from bananas import Client
    from bananas.dashboard import DashboardSettings, create_app

    outer = FastAPI()

    @outer.get("/")
    def home() -> dict[str, str]:
        return {"app": "mine"}

    client = Client(redis_url, router=Router())
    outer.mount("/bananas", create_app(client, DashboardSettings(token=TOKEN)))
    server = ServerThread(outer)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{base}/").json() == {"app": "mine"}
        page = httpx.get(f"{base}/bananas/")
        assert page.status_code == 200
        assert 'data-base="/bananas"' in page.text and "/bananas/static/dashboard.js" in page.text
        assert httpx.get(f"{base}/bananas/static/dashboard.js").status_code == 200
        created = httpx.post(f"{base}/bananas/api/v1/jobs", json={"name": "x"}, headers=headers)
        assert created.status_code == 201
        assert httpx.get(f"{base}/bananas/api/v1/jobs/{created.json()['id']}", headers=headers).status_code == 200
        assert httpx.get(f"{base}/bananas/readyz").json() == {"status": "ok"}
    finally:
        server.stop()
        client.close()


async def test_a_parked_job_says_where_and_why(dash: Served, start_worker: Callable[..., object]) -> None:
    registry = Registry()

    @registry.handler("render")
    def render(job: Job) -> None:
        return None

    await start_worker(registry, routing_keys=("gpu",))  # type: ignore[operator]
    job_id = dash.client.submit_job("transcode", None, routing_key="gpu")
    async with httpx.AsyncClient(base_url=dash.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:

        async def parked() -> object:
            where = (await api.get(f"/api/v1/jobs/{job_id}")).json()["location"]
            return where if where["place"] == "parked" else None

        where = await eventually_async(parked)
        assert where["key"] == "bananas:route:gpu:queue:normal:job:transcode"
        assert "no handler for 'transcode'" in where["reason"]
        problems = (await api.get("/api/v1/overview")).json()["problems"]
        assert any(p["kind"] == "unrunnable" and "transcode" in p["message"] for p in problems)


def test_an_unreadable_record_is_reported_not_a_500(api: httpx.Client, r: redis.Redis) -> None:
    r.set("bananas:job:broken", b"{not json")
    reply = api.get("/api/v1/jobs/broken")
    assert reply.status_code == 200
    assert reply.json()["status"] == "unreadable"
    assert api.post("/api/v1/jobs/broken/cancel").status_code in (404, 409)


def test_metrics_serves_the_exporter_queue_gauges(dash: Served, api: httpx.Client) -> None:
    dash.client.submit_many("x", [None] * 3, "high", routing_key="email")
    reply = api.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    assert 'bananas_queue_ready_jobs{priority="high",routing_key="email"} 3.0' in text
    assert 'bananas_route_orphaned{routing_key="email"} 1.0' in text
