"""``bananas`` processes on Redis Cluster: the CLI (submit, job, result) and worker
processes with only REDIS_URL / --redis-url changed, a job recovered after kill -9 of its
worker process, and three ``bananas scheduler`` processes enqueueing each cron tick
exactly once while one is killed and one stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from integration.support import bananas_argv, wait_until

from bananas import Client
from cluster.app import entries
from cluster.conftest import run_cli
from cluster.group import ClusterGroup

pytestmark = pytest.mark.timeout(90)

M0, M1, M2 = "alpha", "delta", "beta"


class Procs:
    """``bananas`` subprocesses, each in its own process group with a log file; every one
    is killed (with its group) at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"proc-{len(self.procs)}.log"
        full_env = {k: v for k, v in {**self.env, **(env or {})}.items() if k not in unset}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*bananas_argv(), *args], env=full_env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    @staticmethod
    def output(proc: subprocess.Popen[bytes]) -> str:
        return proc.log.read_text(errors="replace")  # type: ignore[attr-defined,no-any-return]

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def procs(cluster_env: dict[str, str], tmp_path: Path) -> Iterator[Procs]:
    pool = Procs(cluster_env, tmp_path)
    try:
        yield pool
    finally:
        pool.cleanup()


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    """The instrument (the session's standalone server, flushed): where handlers record."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def wait_worker(client: Client, procs: Procs, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{procs.output(proc)}")
        return any(w.pid == proc.pid for w in client.workers())

    wait_until(ready, timeout, f"worker pid {proc.pid} to announce itself")


def record(env: dict[str, str], job_id: str) -> dict[str, object]:
    done = run_cli(env, "job", job_id)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_cli_submit_and_worker_processes(
    cluster: ClusterGroup, client: Client, procs: Procs, store: redis.Redis, cluster_env: dict[str, str]
) -> None:
    # One worker told by --redis-url (REDIS_URL unset), one by REDIS_URL.
    no_url = {k: v for k, v in cluster_env.items() if k != "REDIS_URL"}
    flag = procs.start(
        "worker", "cluster.app:registry", "--routing-keys", f"{M0},{M2}", "--redis-url", cluster.url,
        env={"TEST_POOL": "flag"}, unset=("REDIS_URL",),
    )  # fmt: skip
    by_env = procs.start("worker", "cluster.app:registry", "--routing-keys", M1, env={"TEST_POOL": "env"})
    wait_worker(client, procs, flag)
    wait_worker(client, procs, by_env)

    ids = {}
    for key in (M0, M1, M2):
        done = run_cli(
            cluster_env, "submit", "noop", "--routing-key", key, "--payload", '{"n": 1}', "--priority", "high"
        )
        assert done.returncode == 0, done.stderr
        ids[key] = done.stdout.strip()
    done = subprocess.run(
        [*bananas_argv(), "submit", "noop", "--routing-key", M2, "--delay", "0.5", "--redis-url", cluster.url],
        env=no_url, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    delayed = done.stdout.strip()
    wait_until(lambda: len(entries(store)) == 4, 15, "the four jobs to run")
    pools = {entry[0]: (entry[1], entry[2], entry[3]) for entry in entries(store)}
    assert pools == {
        ids[M0]: (M0, "high", "flag"),
        ids[M1]: (M1, "high", "env"),
        ids[M2]: (M2, "high", "flag"),
        delayed: (M2, "normal", "flag"),
    }
    wait_until(lambda: record(cluster_env, delayed)["status"] == "completed", 10, "the delayed job's record")
    shown = record(cluster_env, ids[M1])
    assert shown["routing_key"] == M1 and shown["priority"] == "high" and shown["attempts"] == 1
    result = run_cli(cluster_env, "result", ids[M1])
    assert result.returncode == 0, result.stderr
    for proc in (flag, by_env):
        proc.send_signal(signal.SIGTERM)
    for proc in (flag, by_env):
        assert proc.wait(30) == 0, procs.output(proc)


def test_job_of_a_worker_killed_with_9_is_delivered_again(
    client: Client, procs: Procs, store: redis.Redis, cluster_env: dict[str, str]
) -> None:
    lease = {"JOB_LEASE_SECONDS": "1"}
    first = procs.start("worker", "cluster.app:registry", "--routing-keys", M1, env={**lease, "TEST_POOL": "A"})
    wait_worker(client, procs, first)
    job_id = client.submit_job("slow", {"by_pool": {"A": 60}, "seconds": 0}, "high", routing_key=M1)
    wait_until(lambda: any(e[0] == job_id and e[3] == "A" for e in entries(store, "test:started")), 15, "A to start it")
    wait_until(lambda: client.get_job(job_id).status == "processing", 10, "its start recorded")  # type: ignore[union-attr]

    os.killpg(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert client.get_job(job_id).status == "processing"  # type: ignore[union-attr]
    assert [r.job_id for r in client.running()] == [job_id]  # still leased by the dead worker

    second = procs.start("worker", "cluster.app:registry", "--routing-keys", M1, env={**lease, "TEST_POOL": "B"})
    wait_until(lambda: client.get_job(job_id).status == "completed", 20, "the job to be recovered")  # type: ignore[union-attr]
    assert [(e[0], e[1], e[2], e[3]) for e in entries(store)] == [(job_id, M1, "high", "B")]
    shown = record(cluster_env, job_id)
    assert shown["attempts"] == 2 and shown["recoveries"] == 1
    assert shown["routing_key"] == M1 and shown["priority"] == "high"
    assert client.running() == []
    assert second.poll() is None


#: Seconds the three schedulers run (the standalone soak is tests/scheduler).
CRON_SECONDS = 9.0


@pytest.mark.timeout(CRON_SECONDS + 60)
def test_three_schedulers_enqueue_every_tick_exactly_once(client: Client, procs: Procs, store: redis.Redis) -> None:
    worker = procs.start("worker", "cluster.app:periodic", "--routing-keys", M1)
    schedulers = {name: procs.start("scheduler", "cluster.app:periodic") for name in "abc"}
    wait_until(lambda: entries(store, "test:ticks"), 30, "the first tick to run")
    began = time.monotonic()
    time.sleep(CRON_SECONDS / 3)
    os.killpg(schedulers["a"].pid, signal.SIGKILL)  # dies without warning
    schedulers["d"] = procs.start("scheduler", "cluster.app:periodic")
    time.sleep(max(0.0, began + 2 * CRON_SECONDS / 3 - time.monotonic()))
    schedulers["b"].send_signal(signal.SIGTERM)
    assert schedulers["b"].wait(20) == 0, procs.output(schedulers["b"])
    time.sleep(max(0.0, began + CRON_SECONDS - time.monotonic()))
    elapsed = time.monotonic() - began
    for name in "cd":
        schedulers[name].send_signal(signal.SIGTERM)
    for name in "cd":
        assert schedulers[name].wait(20) == 0, procs.output(schedulers[name])
    last = len(entries(store, "test:ticks"))
    time.sleep(1.5)  # the worker runs what was enqueued last
    assert worker.poll() is None, procs.output(worker)

    ran = entries(store, "test:ticks")
    assert len(ran) >= last
    ticks = [int(datetime.fromisoformat(tick).timestamp()) for tick, _id in ran]
    duplicates = {t: n for t, n in Counter(ticks).items() if n > 1}
    assert not duplicates, f"ticks run more than once: {duplicates}"
    assert sorted(ticks) == list(range(min(ticks), max(ticks) + 1)), "a tick is missing"
    assert len(ticks) >= int(elapsed) - 1
    assert len({job_id for _tick, job_id in ran}) == len(ran)
    for name in "bcd":
        assert "Traceback" not in procs.output(schedulers[name]), procs.output(schedulers[name])
    print(f"\ncluster: {len(ticks)} ticks in {elapsed:.1f}s from 3 schedulers (one killed, one stopped), no duplicate")
