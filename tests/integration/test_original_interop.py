"""Interoperability with the ORIGINAL Bananas, both directions, replaying exactly what
tests/data/original-bananas-behaviour.json (a copy of shared/vectors/) says it writes and
reads: records in the legacy lists with and without routing keys, its retry records, its
result hash and notify message; and what ours must write for its readers and workers."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from original_bananas import (
    OriginalWorker,
    behaviour,
    go_wait_for_result,
    read_like_go,
    read_like_python_sdk,
    read_like_typescript_sdk,
    scheduler_pass,
    sdk_enqueue,
    sdk_record,
)
from support import Recorder, Workers, eventually, job_record, status_of, strings

from bananas import AsyncClient, Client, JobFailedError, Registry, ValidationError, WorkerSettings
from bananas.core.clock import SYSTEM_CLOCK
from bananas.errors import ConfigurationError
from bananas.redis import connection, keys
from bananas.redis.broker import Broker
from bananas.worker.promoter import Promoter
from bananas.worker.reconciler import ReconcileLimits, Reconciler
from bananas.worker.recoverer import Recoverer

BEHAVIOUR = behaviour()
GPU_IN_LEGACY = BEHAVIOUR["records"][0]
GO_RETRY = BEHAVIOUR["records"][1]


class FixedClock:
    def __init__(self, now: float) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


@pytest.fixture
def broker(redis_url: str) -> Iterator[Broker]:
    client = connection.async_client(redis_url)
    yield Broker(client)


# -- records the original writes, run by ours -------------------------------------------------


async def test_sdk_record_with_routing_key_in_legacy_list_runs_only_on_that_routing_key(
    workers: Workers, r: redis.Redis
) -> None:
    record = GPU_IN_LEGACY["record"]
    assert GPU_IN_LEGACY["list"] == "bananas:queue:high" and record["routing_key"] == "gpu"
    sdk_enqueue(r, record)
    plain = sdk_record(str(uuid.uuid4()), "gpu_task", {"w": 1}, "high", routing_key="")
    sdk_enqueue(r, plain)  # same list, no routing key: default
    default = Recorder("default", ("gpu_task",))
    await workers.start(default.registry, routing_keys=("default",))
    gpu_list = keys.route_queue("gpu", "high")
    await eventually(lambda: strings(r.lrange(gpu_list, 0, -1)) == [record["id"]], what="the gpu record moved")
    await eventually(lambda: status_of(r, plain["id"]) == "completed", what="the default record to run")
    assert default.ids == [plain["id"]], "a default worker must never run a gpu record"
    assert r.llen("bananas:queue:high") == 0
    moved = job_record(r, record["id"])
    assert moved is not None and moved["status"] == "pending" and moved.get("attempts") == 0
    assert "gpu" in strings(r.smembers(keys.ROUTING_KEYS))

    gpu = Recorder("gpu", ("gpu_task",))
    await workers.start(gpu.registry, routing_keys=("gpu",))
    await eventually(lambda: status_of(r, record["id"]) == "completed", what="the gpu worker to run it")
    assert gpu.runs == [("gpu", record["id"], "gpu", "high", {"w": 2})]
    assert default.ids == [plain["id"]]


@pytest.mark.parametrize("routing_key", [None, "", "default"])
async def test_legacy_record_without_routing_key_stays_default(
    workers: Workers, r: redis.Redis, routing_key: str | None
) -> None:
    record = sdk_record(str(uuid.uuid4()), "task", {"k": 1}, "low")
    if routing_key is None:
        del record["routing_key"]
    else:
        record["routing_key"] = routing_key
    sdk_enqueue(r, record)
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=("gpu", "default"))
    await eventually(lambda: status_of(r, record["id"]) == "completed", what="the legacy record to run")
    assert rec.runs == [("", record["id"], "default", "low", {"k": 1})]


async def test_go_worker_retry_record_is_promoted_once_to_its_list_as_pending(broker: Broker, r: redis.Redis) -> None:
    record = GO_RETRY["record"]
    assert record["status"] == "pending" and record["attempts"] == 1  # as the Go worker writes a retry
    r.set(keys.job(record["id"]), json.dumps(record))
    r.zadd(keys.SCHEDULED, {record["id"]: time.time() - 1})
    promoters = [Promoter(broker, SYSTEM_CLOCK, asyncio.Event()) for _ in range(3)]
    moved = await asyncio.gather(*(p.promote_due() for p in promoters))
    assert sum(moved) == 1, "exactly one promoter moves it"
    ready = keys.route_queue("default", "normal")
    assert strings(r.lrange(ready, 0, -1)) == [record["id"]]
    stored = job_record(r, record["id"])
    assert stored is not None and stored["status"] == "pending" and "scheduled_for" not in stored
    assert stored["attempts"] == 1 and stored["error"] == "boom"
    await broker.redis.aclose()


async def test_original_retry_record_runs_with_our_retry_count(workers: Workers, r: redis.Redis) -> None:
    """max_retries: a job the original already tried once (attempts=1 of max_retries=3)
    gets the rest of OUR budget: attempts 2, 3 and 4 (max_retries + 1 in all)."""
    record = {**GO_RETRY["record"], "id": str(uuid.uuid4()), "name": "always_fails"}
    r.set(keys.job(record["id"]), json.dumps(record))
    r.zadd(keys.SCHEDULED, {record["id"]: time.time() - 1})
    registry = Registry()
    calls: list[int] = []

    @registry.handler("always_fails")
    def always_fails(job: Any) -> None:
        calls.append(job.attempts)
        raise RuntimeError("still broken")

    await workers.start(registry)
    await eventually(lambda: status_of(r, record["id"]) == "failed", what="the job to use up its retries")
    assert calls == [2, 3, 4]


# -- results ours write, read by the original ---------------------------------------------


def _registry() -> Registry:
    registry = Registry()

    @registry.handler("ok")
    def ok(job: Any) -> dict[str, bool]:
        time.sleep(0.005)
        return {"ok": True}

    @registry.handler("boom")
    def boom(job: Any) -> None:
        raise ValueError("boom")

    return registry


@pytest.mark.parametrize("name", ["ok", "boom"])
async def test_our_results_parse_with_the_original_readers_and_wake_its_waiter(
    workers: Workers, r: redis.Redis, client: Client, redis_url: str, name: str
) -> None:
    job_id = str(uuid.uuid4())
    subscribed = threading.Event()
    woke: list[bool] = []
    waiter = threading.Thread(
        target=lambda: woke.append(go_wait_for_result(redis.Redis.from_url(redis_url), job_id, 10, subscribed))
    )
    waiter.start()
    assert subscribed.wait(5)
    # The Python SDK's record, in the legacy list, with no retries so "boom" fails at once.
    sdk_enqueue(r, {**sdk_record(job_id, name, {}), "max_retries": 0})
    await workers.start(_registry())
    await eventually(lambda: not waiter.is_alive(), what="the Go waiter to return")
    waiter.join()
    assert woke == [True], "the original's WaitForResult accepts only 'ready'"
    go = read_like_go(r, job_id)
    py = read_like_python_sdk(r, job_id)
    ts = read_like_typescript_sdk(r, job_id)
    status = "completed" if name == "ok" else "failed"
    assert go["status"] == py["status"] == ts["status"] == status
    assert isinstance(py["duration_ms"], int) and py["duration_ms"] >= 0
    assert ts["completed_at"] is not None and not math.isnan(ts["duration_ms"])
    assert go["completed_at"].endswith("Z") and len(go["completed_at"]) == len("2026-12-03T13:14:26Z")
    assert abs(py["completed_at"].timestamp() - time.time()) < 60
    if name == "ok":
        assert py["result"] == {"ok": True}
    else:
        assert py["error"] is not None and py["error"].startswith("ValueError: boom")


# -- results the original writes, read by ours --------------------------------------------


@pytest.mark.parametrize("outcome", ["success", "failure"])
async def test_our_clients_read_and_wait_for_the_original_result(
    redis_url: str, r: redis.Redis, client: Client, outcome: str
) -> None:
    fields = BEHAVIOUR["results"][f"written_by_go_on_{outcome}"]
    job_id = str(uuid.uuid4())
    async with AsyncClient(redis_url) as aclient:
        waiting = asyncio.create_task(aclient.get_result(job_id, timeout=10))
        await eventually(lambda: r.pubsub_numsub(keys.result_notify_channel(job_id))[0][1] == 1, what="subscribed")
        r.hset(keys.result(job_id), mapping=fields)
        r.publish(keys.result_notify_channel(job_id), "ready")
        if outcome == "success":
            assert await waiting == {"ok": True}
        else:
            with pytest.raises(JobFailedError, match="boom"):
                await waiting
    got = client.get_job_result(job_id)
    assert got is not None and got.status == fields["status"]
    assert got.duration_ms == (1144 if outcome == "success" else 12)
    assert got.finished_at is not None and got.finished_at.isoformat() == "2026-12-03T13:14:26+00:00"
    if outcome == "success":
        assert got.result == {"ok": True}
        assert client.get_result(job_id) == {"ok": True}
    else:
        assert got.error == "boom"
        with pytest.raises(JobFailedError):
            client.get_result(job_id)


def test_our_reader_takes_our_old_fractional_duration(r: redis.Redis, client: Client) -> None:
    r.hset(keys.result("old"), mapping={"status": "completed", "result": "1", "duration_ms": "0.681"})
    got = client.get_job_result("old")
    assert got is not None and got.duration_ms == pytest.approx(0.681) and got.finished_at is None


# -- migration mode: what our clients write, read by the original Go worker --------------------


def _go_worker(redis_url: str, seen: list[dict[str, Any]]) -> OriginalWorker:
    def handler(job: dict[str, Any]) -> Any:
        seen.append(job)
        return {"echo": job["payload"]}

    return OriginalWorker(redis_url, handler)


@pytest.mark.parametrize("how", ["argument", "environment"])
async def test_migration_mode_default_jobs_reach_the_original_go_worker(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "environment":
        monkeypatch.setenv("BANANAS_COMPAT", "original")
        sync, aio = Client(redis_url), AsyncClient(redis_url)
    else:
        sync, aio = Client(redis_url, compat="original"), AsyncClient(redis_url, compat="original")
    one = sync.submit_job("task", {"n": 1}, "high")
    many = sync.submit_many("task", [{"n": 2}, {"n": 3}], "low")
    two = await aio.submit_job("task", {"n": 4})
    routed = sync.submit_job("task", {"n": 5}, routing_key="gpu")
    assert strings(r.lrange("bananas:queue:high", 0, -1)) == [one]
    assert strings(r.lrange("bananas:queue:low", 0, -1)) == list(reversed(many))
    assert strings(r.lrange("bananas:queue:normal", 0, -1)) == [two]
    assert strings(r.lrange(keys.route_queue("gpu", "normal"), 0, -1)) == [routed], "routed: as the Go client"
    for job_id in (one, *many, two):
        record = job_record(r, job_id)
        assert record is not None and record["routing_key"] == "default" and record["status"] == "pending"
        assert isinstance(record["attempts"], int) and isinstance(record["max_retries"], int)
        assert read_time_like_go(record["created_at"]) and read_time_like_go(record["updated_at"])
    seen: list[dict[str, Any]] = []
    go = _go_worker(redis_url, seen).start()
    try:
        ids = [one, *many, two]
        await eventually(lambda: all(status_of(r, i) == "completed" for i in ids), what="the Go worker")
        assert sorted(j["id"] for j in seen) == sorted(ids)
        assert sync.get_result(one) == {"echo": {"n": 1}}
        assert status_of(r, routed) == "pending", "the Go worker never reads routed lists"
    finally:
        go.stop()
        sync.close()
        await aio.aclose()


def read_time_like_go(text: str) -> bool:
    from original_bananas import _RFC3339

    return bool(_RFC3339.fullmatch(text))


def test_migration_mode_is_off_by_default(r: redis.Redis, client: Client) -> None:
    job_id = client.submit_job("task", {})
    assert strings(r.lrange(keys.route_queue("default", "normal"), 0, -1)) == [job_id]
    assert r.llen("bananas:queue:normal") == 0


def test_a_bad_migration_mode_is_one_clear_error(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError, match=r"^compat: must be 'original' \(or unset for off\), got 'orig'$"):
        Client(redis_url, compat="orig")
    monkeypatch.setenv("BANANAS_COMPAT", "go")
    with pytest.raises(ValidationError, match=r"^BANANAS_COMPAT: must be 'original'"):
        Client(redis_url)
    with pytest.raises(ValidationError, match=r"^BANANAS_COMPAT: "):
        AsyncClient(redis_url)
    with pytest.raises(ConfigurationError, match=r"^BANANAS_COMPAT: must be 'original'"):
        WorkerSettings.from_env({"BANANAS_COMPAT": "go"})
    assert WorkerSettings.from_env({"BANANAS_COMPAT": "Original"}).compat == "original"
    assert r.dbsize() == 0


def test_cli_reads_the_migration_mode(cli_env: dict[str, str], r: redis.Redis) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "bananas", "submit", "task", "--payload", "{}"]
    bad = subprocess.run(argv, env={**cli_env, "BANANAS_COMPAT": "yes"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    expected = "bananas: error: BANANAS_COMPAT: must be 'original' (or unset for off), got 'yes'"
    assert bad.stderr.strip().splitlines() == [expected]
    good = subprocess.run(
        argv, env={**cli_env, "BANANAS_COMPAT": "original"}, capture_output=True, text=True, timeout=60
    )
    assert good.returncode == 0, good.stderr
    assert strings(r.lrange("bananas:queue:normal", 0, -1)) == [good.stdout.strip()]


# -- next to the original's scheduler and workers --------------------------------------------


async def test_migration_mode_promoter_leaves_due_jobs_to_the_go_scheduler(broker: Broker, r: redis.Redis) -> None:
    due = time.time() - 1
    ids = [str(uuid.uuid4()) for _ in range(50)]
    for job_id in ids:
        record = {**GO_RETRY["record"], "id": job_id}
        r.set(keys.job(job_id), json.dumps(record))
        r.zadd(keys.SCHEDULED, {job_id: due})
    clock = FixedClock(time.time())
    ours = Promoter(broker, clock, asyncio.Event(), grace=5.0, legacy_default=True)
    assert await ours.promote_due() == 0, "within the grace period the Go scheduler moves them"
    assert scheduler_pass(r) == 50
    clock.value += 10
    assert await ours.promote_due() == 0
    assert sorted(strings(r.lrange("bananas:queue:normal", 0, -1))) == sorted(ids), "each id once"
    # Without a Go scheduler, ours promotes after the grace, to the legacy list.
    late = str(uuid.uuid4())
    r.set(keys.job(late), json.dumps({**GO_RETRY["record"], "id": late}))
    r.zadd(keys.SCHEDULED, {late: clock.value - 6})
    assert await ours.promote_due() == 1
    assert strings(r.lrange("bananas:queue:normal", 0, 0)) == [late]
    await broker.redis.aclose()


async def test_recoverer_and_reconciler_never_requeue_what_an_original_worker_holds(
    broker: Broker, r: redis.Redis
) -> None:
    held = sdk_record(str(uuid.uuid4()), "task", {}, "normal")
    held.update(status="processing", updated_at="2025-11-10T04:16:33Z")
    r.set(keys.job(held["id"]), json.dumps(held))
    r.lpush("bananas:queue:processing", held["id"])
    # An expired lease of ours on the same id (a duplicate delivery that lost its worker).
    r.zadd(keys.LEASES, {held["id"]: 1})
    r.hset(keys.LEASE_OWNERS, held["id"], "gone:1:abcd:1")
    recoverer = Recoverer(broker, SYSTEM_CLOCK, interval=1, max_recoveries=3, is_mine=lambda _: False)
    await recoverer.recover_once()
    assert r.zcard(keys.LEASES) == 0 and r.hlen(keys.LEASE_OWNERS) == 0
    assert r.llen(keys.route_queue("default", "normal")) == 0 and r.llen("bananas:queue:normal") == 0
    reconciler = Reconciler(broker, SYSTEM_CLOCK, lease_seconds=2.0, limits=ReconcileLimits(orphan_min_age=0))
    report = await reconciler.reconcile_once(full_sweep=True)
    assert report.repairs == [] and report.original_processing == 1
    assert "original_processing=1" in report.summary()
    assert r.llen(keys.route_queue("default", "normal")) == 0 and r.llen("bananas:queue:normal") == 0
    assert strings(r.lrange("bananas:queue:processing", 0, -1)) == [held["id"]]
    # Once the original worker is done with it, an orphan like it would be repaired.
    r.delete("bananas:queue:processing")
    report = await reconciler.reconcile_once(full_sweep=True)
    assert [x.kind for x in report.repairs] == ["orphan"]
    await broker.redis.aclose()


@pytest.mark.parametrize("grace", [0.0, 5.0])
async def test_go_scheduler_race_is_avoided_by_the_grace(broker: Broker, r: redis.Redis, grace: float) -> None:
    """The original scheduler reads due entries, then pushes them without a claim. Our
    promoter moving them in between (grace 0: what ours did before) makes every one of
    them queued twice; with migration mode's grace ours leaves them alone."""
    ids = [str(uuid.uuid4()) for _ in range(200)]
    for job_id in ids:
        r.set(keys.job(job_id), json.dumps({**GO_RETRY["record"], "id": job_id}))
        r.zadd(keys.SCHEDULED, {job_id: time.time() - 2})
    ours = Promoter(broker, SYSTEM_CLOCK, asyncio.Event(), grace=grace, legacy_default=True)
    moved: list[int] = []

    def ours_in_between() -> None:
        moved.append(asyncio.run_coroutine_threadsafe(ours.promote_due(), loop).result(10))

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(scheduler_pass, r, between=ours_in_between)
    queued = strings(r.lrange("bananas:queue:normal", 0, -1))
    twice = len(queued) - len(set(queued))
    assert sorted(set(queued)) == sorted(ids)
    if grace:
        assert moved == [0] and twice == 0
    else:
        assert moved == [200] and twice == 200
    await broker.redis.aclose()


async def test_jobs_our_clients_schedule_run_when_only_the_go_scheduler_promotes(
    workers: Workers, r: redis.Redis, redis_url: str
) -> None:
    with Client(redis_url, compat="original") as client:
        routed = client.schedule_job("task", {"k": "gpu"}, delay=0, routing_key="gpu")
        plain = client.schedule_job("task", {"k": "default"}, delay=0)
    time.sleep(1.05)  # the Go scheduler compares with whole seconds
    assert scheduler_pass(r) == 2
    assert strings(r.lrange(keys.route_queue("gpu", "normal"), 0, -1)) == [routed]
    assert strings(r.lrange("bananas:queue:normal", 0, -1)) == [plain]
    assert status_of(r, routed) == "scheduled", "the Go scheduler leaves the status as it was"
    rec = Recorder()
    await workers.start(rec.registry, routing_keys=("gpu", "default"))
    await eventually(lambda: status_of(r, routed) == status_of(r, plain) == "completed", what="both to run")
    assert sorted(rec.ids) == sorted([routed, plain])


async def test_a_retry_our_worker_writes_is_run_by_the_original(
    workers: Workers, r: redis.Redis, redis_url: str
) -> None:
    """Our retry record in the scheduled set, promoted by the Go scheduler to the legacy
    list, is decoded and run by the Go worker, which keeps counting attempts from ours."""
    registry = Registry()

    @registry.handler("flaky")
    def flaky(job: Any) -> None:
        raise RuntimeError("first attempt fails here")

    worker = await workers.start(registry, compat="original")
    with Client(redis_url, compat="original") as client:
        job_id = client.submit_job("flaky", {"n": 1})
    await eventually(lambda: status_of(r, job_id) == "scheduled", what="our retry")
    await workers.stop(worker)
    record = job_record(r, job_id)
    assert record is not None and record["attempts"] == 1 and record["error"].startswith("RuntimeError")
    assert read_time_like_go(record["scheduled_for"]) and read_time_like_go(record["updated_at"])
    r.zadd(keys.SCHEDULED, {job_id: time.time() - 2})  # due now, whatever our backoff was
    assert scheduler_pass(r) == 1
    assert strings(r.lrange("bananas:queue:normal", 0, -1)) == [job_id]
    seen: list[dict[str, Any]] = []
    go = _go_worker(redis_url, seen).start()
    try:
        await eventually(lambda: status_of(r, job_id) == "completed", what="the Go worker to run the retry")
    finally:
        go.stop()
    assert [j["attempts"] for j in seen] == [1]
    assert read_like_python_sdk(r, job_id)["result"] == {"echo": {"n": 1}}


def test_bananas_queues_counts_what_original_workers_hold(cli_env: dict[str, str], r: redis.Redis) -> None:
    import subprocess
    import sys

    r.lpush("bananas:queue:processing", "a", "b")
    argv = [sys.executable, "-m", "bananas", "queues"]
    text = subprocess.run(argv, env=cli_env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "run by original Go workers (bananas:queue:processing): 2" in text.stdout
    data = subprocess.run([*argv, "--json"], env=cli_env, capture_output=True, text=True, timeout=60)
    assert json.loads(data.stdout)["original_processing"] == 2


async def test_a_second_copy_of_a_job_an_original_worker_runs_is_not_run_by_ours(
    workers: Workers, r: redis.Redis
) -> None:
    """The original Go scheduler can push a job twice: the Go worker runs one copy (it is
    in bananas:queue:processing) while the other waits in a legacy list."""
    held = sdk_record(str(uuid.uuid4()), "task", {"copy": 2}, "normal")
    held.update(status="processing")
    r.set(keys.job(held["id"]), json.dumps(held))
    r.lpush("bananas:queue:processing", held["id"])
    r.lpush("bananas:queue:normal", held["id"])
    free = sdk_record(str(uuid.uuid4()), "task", {"copy": 1}, "normal")
    sdk_enqueue(r, free)
    rec = Recorder()
    await workers.start(rec.registry)
    await eventually(lambda: status_of(r, free["id"]) == "completed", what="the free job to run")
    await eventually(lambda: r.llen("bananas:queue:normal") == 0 and r.zcard(keys.LEASES) == 0, what="settled")
    assert rec.ids == [free["id"]]
    assert status_of(r, held["id"]) == "processing", "left to the original worker"
    assert strings(r.lrange("bananas:queue:processing", 0, -1)) == [held["id"]]


def test_orphan_repair_refuses_an_id_an_original_worker_took_meanwhile(r: redis.Redis) -> None:
    """The reconciler reads the original's processing list and the ready lists at two
    moments: a Go worker that takes the id in between makes it look like an orphan. The
    repair script itself checks the processing list, so the job is not queued again."""
    import hashlib

    from bananas.redis import calls
    from bananas.redis.runner import SyncRunner

    job_id = str(uuid.uuid4())
    record = json.dumps(sdk_record(job_id, "legacy_job", {})).encode()
    r.set(keys.job(job_id), record)
    r.lpush(keys.ORIGINAL_PROCESSING, job_id)  # taken by a Go worker after the reconciler looked
    home = keys.route_queue("default", "normal")
    call = calls.rehome(
        job_id, "ready", home_queue=home, seen_record_sha1=hashlib.sha1(record).hexdigest(),
        channel=keys.route_notify_channel("default"), orphan=True, layout=keys.STANDALONE,
    )  # fmt: skip
    assert SyncRunner(r).run(call) == 0
    assert r.llen(home) == 0
    assert strings(r.lrange(keys.ORIGINAL_PROCESSING, 0, -1)) == [job_id]
