"""Bananas through a ``redis+sentinel://`` URL on a real master + replica + 3 sentinels:
the clients, an in-process worker and the CLI, and ``BANANAS_WAIT_REPLICAS``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from bananas import AsyncClient, Client, ConfigurationError, NotReplicatedError, Registry, Worker, WorkerSettings
from bananas.redis import keys
from sentinel.group import SentinelGroup, wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def master(sentinel_group: SentinelGroup) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=sentinel_group.master_port())
    client.flushall()
    client.config_resetstat()
    yield client
    client.close()


@pytest.fixture
def env() -> dict[str, str]:
    """The caller's environment without any Bananas, worker or Redis setting."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKER_", "JOB_", "BANANAS_")) and k not in ("REDIS_URL",)
    }


def wait_calls(master: redis.Redis) -> int:
    return int(master.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def test_client_and_worker_through_sentinel(sentinel_group: SentinelGroup, master: redis.Redis):
    registry = Registry()

    @registry.handler("double")
    async def double(job):  # type: ignore[no-untyped-def]
        return job.payload * 2

    async def scenario() -> None:
        settings = WorkerSettings(redis_url=sentinel_group.url, routing_keys=("alpha", "beta"))
        worker = Worker(registry, settings)
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(worker.wait_ready(), 15)
            async with AsyncClient(sentinel_group.url) as client:
                result = await client.submit_and_wait("double", 21, routing_key="beta", timeout=15)
                assert result == 42
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    with Client(sentinel_group.url) as client:
        job_id = client.submit_job("double", 1, routing_key="alpha")
        assert client.get_job(job_id) is not None
    # The job is on the master the sentinels named, not elsewhere.
    assert master.exists(keys.job(job_id)) == 1
    assert wait_calls(master) == 0, "WAIT sent although BANANAS_WAIT_REPLICAS is not set"


def test_wait_replicas_on_submit(sentinel_group: SentinelGroup, master: redis.Redis, monkeypatch):
    monkeypatch.delenv("BANANAS_WAIT_REPLICAS", raising=False)
    with Client(sentinel_group.url, wait_replicas=1) as client:
        # A server that forgot its scripts (restart): NOSCRIPT, scripts loaded, the call
        # sent again with its WAIT: 2 WAITs for each call, for one job and in MULTI/EXEC.
        master.script_flush()
        job_id = client.submit_job("work", {"n": 1}, routing_key="alpha")
        master.script_flush()
        ids = client.submit_many("work", [{"n": 2}, {"n": 3}], routing_key="beta")
    assert wait_calls(master) == 4
    # ``WAIT`` returned 1, so the replica holds the jobs already.
    replica = redis.Redis(host="127.0.0.1", port=sentinel_group.replica_of(master).port)
    try:
        assert replica.exists(keys.job(job_id), *(keys.job(i) for i in ids)) == 3
    finally:
        replica.close()
    # More replicas than exist: the write is on the master only, and the caller is told.
    with Client(sentinel_group.url, wait_replicas=2) as client, pytest.raises(NotReplicatedError, match="1 of 2"):
        client.submit_job("work", {"n": 4}, routing_key="alpha")


def test_wait_replicas_from_environment(sentinel_group: SentinelGroup, master: redis.Redis, monkeypatch):
    monkeypatch.setenv("BANANAS_WAIT_REPLICAS", "1")

    async def submit() -> str:
        async with AsyncClient(sentinel_group.url) as client:
            assert client.wait_replicas == 1
            return await client.submit_job("work", {}, routing_key="alpha")

    asyncio.run(submit())
    assert wait_calls(master) == 1
    # The argument wins over the environment.
    with Client(sentinel_group.url, wait_replicas=0) as client:
        client.submit_job("work", {}, routing_key="alpha")
    assert wait_calls(master) == 1
    for bad in ("-1", "one", "1.5"):
        monkeypatch.setenv("BANANAS_WAIT_REPLICAS", bad)
        with pytest.raises(ConfigurationError, match="BANANAS_WAIT_REPLICAS"):
            Client(sentinel_group.url)
        with pytest.raises(ConfigurationError, match="BANANAS_WAIT_REPLICAS"):
            WorkerSettings.from_env({"BANANAS_WAIT_REPLICAS": bad})


def test_worker_acks_wait_for_replicas(sentinel_group: SentinelGroup, master: redis.Redis):
    registry = Registry()

    @registry.handler("noop")
    async def noop(job):  # type: ignore[no-untyped-def]
        return None

    with Client(sentinel_group.url) as client:
        ids = [client.submit_job("noop", i, routing_key="alpha") for i in range(20)]
    assert wait_calls(master) == 0

    async def run_worker() -> None:
        settings = WorkerSettings.from_env(
            {"REDIS_URL": sentinel_group.url, "WORKER_ROUTING_KEYS": "alpha", "BANANAS_WAIT_REPLICAS": "1"}
        )
        assert settings.wait_replicas == 1
        worker = Worker(registry, settings)
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(worker.wait_ready(), 15)
            with Client(sentinel_group.url) as client:
                await asyncio.to_thread(
                    wait_for,
                    lambda: all(client.get_job(i).status.value == "completed" for i in ids),  # type: ignore[union-attr]
                    20,
                    "every job to complete",
                )
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    asyncio.run(run_worker())
    # Acks are batched by the writer: at least one WAIT, at most one per job.
    assert 1 <= wait_calls(master) <= len(ids)


def test_cli_through_sentinel(sentinel_group: SentinelGroup, master: redis.Redis, env: dict[str, str]):
    env = {**env, "REDIS_URL": sentinel_group.url, "BANANAS_WAIT_REPLICAS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "bananas", "submit", "work", "--routing-key", "gpu", "--payload", "{}"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    job_id = out.stdout.strip()
    assert master.exists(keys.job(job_id)) == 1
    assert wait_calls(master) == 1
    queues = subprocess.run(
        [sys.executable, "-m", "bananas", "queues", "--redis-url", sentinel_group.url],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "gpu" in queues.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bananas", "submit", "work"],
        env={**env, "BANANAS_WAIT_REPLICAS": "lots"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "BANANAS_WAIT_REPLICAS" in bad.stderr


def test_cli_masks_sentinel_passwords(env: dict[str, str]):
    url = "redis+sentinel://app:s3cret-pw@127.0.0.1:1,127.0.0.1:2/svc/0?sentinel_password=s3nt-pw"
    out = subprocess.run(
        [sys.executable, "-m", "bananas", "queues", "--redis-url", url],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert "s3cret-pw" not in out.stderr + out.stdout
    assert "s3nt-pw" not in out.stderr + out.stdout
    assert out.stderr.startswith("bananas: error:"), out.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["workers"],
        ["running"],
        ["dlq", "list"],
        ["limits", "list"],
        ["schedules"],
        ["reconcile", "--dry-run"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_read_commands_through_sentinel(sentinel_group: SentinelGroup, master: redis.Redis, env, argv):
    out = subprocess.run(
        [sys.executable, "-m", "bananas", *argv],
        env={**env, "REDIS_URL": sentinel_group.url}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_exporter_and_scheduler_through_sentinel(sentinel_group: SentinelGroup, master: redis.Redis, env, tmp_path):
    """The long-running edges build their clients through the same URL handling."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    schedules = tmp_path / "schedules.toml"
    schedules.write_text('[schedules.tick]\ncron = "* * * * * *"\njob = "work"\nrouting_key = "ticks"\n')
    run_env = {**env, "REDIS_URL": sentinel_group.url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bananas", "exporter", "--port", str(port), "--host", "127.0.0.1"],
            env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "bananas", "scheduler", "--schedules", str(schedules)],
            env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        ),
    ]  # fmt: skip
    try:

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                return str(response.read().decode())

        body = wait_for(lambda: _try(scrape), 20, "the exporter to answer")
        assert "bananas_redis_up 1.0" in body
        # The scheduler enqueued its tick on the master the sentinels named.
        wait_for(lambda: master.llen(keys.route_queue("ticks", "normal")) >= 1, 20, "a scheduled tick")
        time.sleep(0.1)
        assert "ticks" in wait_for(lambda: _try(scrape), 10, "a scrape")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _try(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except OSError:
        return None


def test_worker_goes_on_when_too_few_replicas_confirm(sentinel_group: SentinelGroup, master: redis.Redis, caplog):
    """A worker's ack that too few replicas confirmed is done all the same: logged, not retried."""
    registry = Registry()

    @registry.handler("noop")
    async def noop(job):  # type: ignore[no-untyped-def]
        return None

    with Client(sentinel_group.url) as client:
        ids = client.submit_many("noop", list(range(5)), routing_key="alpha")

    async def run_worker() -> None:
        settings = WorkerSettings(redis_url=sentinel_group.url, routing_keys=("alpha",), wait_replicas=2)
        worker = Worker(registry, settings)
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(worker.wait_ready(), 15)
            with Client(sentinel_group.url) as client:
                await asyncio.to_thread(
                    wait_for,
                    lambda: all(client.get_job(i).status.value == "completed" for i in ids),  # type: ignore[union-attr]
                    30,
                    "every job to complete",
                )
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    with caplog.at_level("WARNING", logger="bananas.redis"):
        asyncio.run(run_worker())
    warnings = [r.getMessage() for r in caplog.records if r.name == "bananas.redis"]
    assert any("only 1 of 2 replicas" in w for w in warnings), warnings
    assert len(warnings) == 1, "the warning is rate-limited"
