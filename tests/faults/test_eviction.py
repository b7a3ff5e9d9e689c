"""Issue 9, item 2: a Redis that may evict keys loses accepted jobs silently, so the
worker refuses an ``allkeys-*`` policy at start (one line, exit 3) unless told to run
anyway, and the worker, the scheduler and ``bananas queues`` warn on any policy other
than ``noeviction``. ``CONFIG GET`` may be forbidden: the policy is then read from INFO."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from bananas import Client
from bananas.embedded import EmbeddedServer
from bananas.redis import eviction
from bananas.scheduler.service import Scheduler
from faults.harness import (
    Fleet,
    Proc,
    assert_quiet,
    check,
    job_specs,
    submit_all,
    wait_completed,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def evicting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A server as a careless deployment has it: ``maxmemory-policy allkeys-lru``."""
    server = EmbeddedServer(
        tmp_path_factory.mktemp("evicting"), extra_args=("--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru")
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def evicting_url(evicting: EmbeddedServer) -> Iterator[str]:
    admin = redis.Redis.from_url(evicting.url)
    admin.flushall()
    admin.config_set("maxmemory-policy", "allkeys-lru")
    admin.close()
    yield evicting.url


def _bananas(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bananas", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_allkeys_policy_refused_at_start_then_override_runs_with_a_warning(
    fleet: Fleet, evicting_url: str, store: redis.Redis, cli_env: dict[str, str]
) -> None:
    refused = fleet.worker(evicting_url, name="refused")
    code = refused.wait(30)
    log = refused.log_text()
    assert code == 3, log
    errors = [line for line in log.splitlines() if line.startswith("bananas: error:")]
    assert len(errors) == 1 and "maxmemory-policy is allkeys-lru" in errors[0], log
    assert "BANANAS_ALLOW_EVICTION=1" in errors[0] and "--allow-eviction" in errors[0]
    assert "Traceback" not in log

    # The flag and the variable are the documented override; the warning stays loud.
    env = {**refused.env}
    flagged = Proc("flagged", [*refused.argv, "--allow-eviction"], env, fleet.tmp / "flagged.log")
    fleet.procs.append(flagged)
    allowed = fleet.worker(evicting_url, env={"BANANAS_ALLOW_EVICTION": "1"}, name="allowed")
    for proc in (flagged, allowed):
        wait_until(lambda p=proc: "consuming" in p.log_text(), 30, f"{proc.name} to start with the override")
        assert "WARNING" in proc.log_text() and "maxmemory-policy is allkeys-lru" in proc.log_text()

    started = time.monotonic()
    with Client(evicting_url) as client:
        ids = submit_all(client, job_specs(300, ms=(1, 5)))
        r = redis.Redis.from_url(evicting_url)
        try:
            wait_completed(r, ids, timeout=60)
            outcome = check("eviction_policy", r, store, ids, started, policy="allkeys-lru", refused_exit=code)
            assert outcome.lost == 0
            assert_quiet(r)
        finally:
            r.close()

    queues = _bananas({**cli_env, "REDIS_URL": evicting_url}, "queues")
    assert queues.returncode == 0, queues.stderr
    assert "warning" in queues.stderr and "maxmemory-policy is allkeys-lru" in queues.stderr


def test_volatile_policy_warns_but_starts(fleet: Fleet, evicting_url: str, cli_env: dict[str, str]) -> None:
    admin = redis.Redis.from_url(evicting_url)
    admin.config_set("maxmemory-policy", "volatile-lru")
    admin.close()
    worker = fleet.worker(evicting_url, name="volatile")
    wait_until(lambda: "consuming" in worker.log_text(), 30, "the worker to start")
    assert worker.alive()
    assert "maxmemory-policy is volatile-lru" in worker.log_text()
    queues = _bananas({**cli_env, "REDIS_URL": evicting_url}, "queues")
    assert queues.returncode == 0 and "maxmemory-policy is volatile-lru" in queues.stderr


def test_policy_read_from_info_when_config_is_forbidden(evicting_url: str) -> None:
    admin = redis.Redis.from_url(evicting_url)
    admin.acl_setuser("noconfig", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"])
    admin.acl_setuser("noadmin", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config", "-info"])
    host, port = admin.connection_pool.connection_kwargs["host"], admin.connection_pool.connection_kwargs["port"]
    try:
        no_config = redis.Redis(host=host, port=port, username="noconfig", password="pw")
        with pytest.raises(redis.exceptions.NoPermissionError):
            no_config.config_get("maxmemory-policy")
        assert eviction.read_policy(no_config) == "allkeys-lru"
        no_admin = redis.Redis(host=host, port=port, username="noadmin", password="pw")
        assert eviction.read_policy(no_admin) is None
        assert "could not read" in eviction.describe(None)
        no_config.close()
        no_admin.close()
    finally:
        admin.acl_deluser("noconfig", "noadmin")
        admin.close()


def test_noeviction_is_quiet(redis_url: str, cli_env: dict[str, str]) -> None:
    admin = redis.Redis.from_url(redis_url)
    assert eviction.read_policy(admin) == "noeviction"
    admin.close()
    queues = _bananas(cli_env, "queues")
    assert queues.returncode == 0 and "maxmemory-policy" not in queues.stderr


def test_risk_levels() -> None:
    assert eviction.risk("noeviction") is eviction.EvictionRisk.NONE
    assert eviction.risk("allkeys-lfu") is eviction.EvictionRisk.ANY
    assert eviction.risk("volatile-ttl") is eviction.EvictionRisk.SOME


async def test_scheduler_warns(evicting_url: str, caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler([], redis_url=evicting_url)
    with caplog.at_level("WARNING", logger="bananas"):
        task = asyncio.create_task(scheduler.run())
        for _ in range(200):
            if "maxmemory-policy is allkeys-lru" in caplog.text:
                break
            await asyncio.sleep(0.02)
        scheduler.stop()
        await asyncio.wait_for(task, 10)
    assert "maxmemory-policy is allkeys-lru" in caplog.text
