"""Graceful shutdown of a CLI worker on SIGTERM/SIGINT: stop fetching, let running jobs
finish within the grace period, give the rest back to their queues, exit 0."""

from __future__ import annotations

import signal

import pytest
import redis
from support import CliRunner, job_record, ran, status_of, strings, wait_until

from bananas import Client


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_running_jobs_finish_then_exit_0(cli: CliRunner, client: Client, r: redis.Redis, sig: signal.Signals) -> None:
    worker = cli.worker("--routing-keys", "gpu", "--concurrency", "3", pool="A")
    cli.wait_ready(worker)
    ids = [
        client.submit_job("slow", {"seconds": 1.0}, "high", routing_key="gpu"),
        client.submit_job("slow", {"seconds": 1.0}, "normal", routing_key="gpu"),
        client.submit_job("sync_slow", {"seconds": 1.0}, "low", routing_key="gpu"),
    ]
    wait_until(lambda: len(ran(r, "test:started")) == 3, what="all three jobs to start")
    worker.send_signal(sig)
    wait_until(lambda: f"{sig.name} received" in cli.output(worker), what="the worker to begin stopping")
    late = client.submit_job("slow", {"seconds": 0}, "high", routing_key="gpu")

    assert cli.wait_exit(worker) == 0, cli.output(worker)
    assert [status_of(r, j) for j in ids] == ["completed"] * 3
    assert sorted(entry[0] for entry in ran(r)) == sorted(ids)
    # Once stopping, the worker fetches nothing new, though its slots are free again.
    assert status_of(r, late) == "pending"
    assert strings(r.lrange("bananas:route:gpu:queue:high", 0, -1)) == [late]
    assert r.zcard("bananas:leases") == 0
    assert "Traceback" not in cli.output(worker)


def test_unfinished_jobs_go_back_to_their_queues_after_the_grace_period(
    cli: CliRunner, client: Client, r: redis.Redis
) -> None:
    env = {"WORKER_SHUTDOWN_GRACE": "0.3"}
    worker = cli.worker("--routing-keys", "gpu,email", pool="A", env=env)
    cli.wait_ready(worker)
    async_job = client.submit_job("slow", {"by_pool": {"A": 60}}, "high", routing_key="gpu")
    sync_job = client.submit_job("sync_slow", {"by_pool": {"A": 60}}, "low", routing_key="email")
    wait_until(lambda: len(ran(r, "test:started")) == 2, what="both jobs to start")

    worker.send_signal(signal.SIGTERM)
    assert cli.wait_exit(worker, 15) == 0, cli.output(worker)
    assert strings(r.lrange("bananas:route:gpu:queue:high", 0, -1)) == [async_job]
    assert strings(r.lrange("bananas:route:email:queue:low", 0, -1)) == [sync_job]
    for job_id in (async_job, sync_job):
        record = job_record(r, job_id)
        assert record is not None and record["status"] == "pending"
    assert r.zcard("bananas:leases") == 0 and r.hlen("bananas:lease:owners") == 0
    assert ran(r) == []  # neither finished

    # Another worker runs them to completion.
    cli.worker("--routing-keys", "email,gpu", pool="B")
    wait_until(
        lambda: status_of(r, async_job) == status_of(r, sync_job) == "completed", 15, what="the jobs to run again"
    )
    assert sorted(entry[0] for entry in ran(r)) == sorted([async_job, sync_job])
    assert {entry[4] for entry in ran(r)} == {"B"}
