"""The operator's commands with ``REDIS_URL=redis+cluster://...``: the same commands, the
same output as on one server (``bananas dlq``, ``queues --json`` and ``workers --json``
are in tests/cluster/test_fleet.py)."""

from __future__ import annotations

import json
import subprocess

import pytest
from cluster.group import ClusterGroup
from integration.support import bananas_argv

from bananas import Client, chain, sig
from bananas.redis import connection

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def env(cli_env: dict[str, str], cluster: ClusterGroup) -> dict[str, str]:
    return {**cli_env, "REDIS_URL": cluster.url}


def run(env: dict[str, str], *args: str, code: int = 0) -> str:
    done = subprocess.run([*bananas_argv(), *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == code, f"bananas {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_cli_reads_and_actions_on_cluster(env: dict[str, str], client: Client, cluster: ClusterGroup) -> None:
    job_id = run(env, "submit", "work", "--payload", '{"a": 1}', "--routing-key", "delta").strip()
    assert job_id.startswith("delta~")
    assert json.loads(run(env, "job", job_id))["routing_key"] == "delta"
    assert "no job with id" in subprocess.run(
        [*bananas_argv(), "job", "no-routing-key"], env=env, capture_output=True, text=True, timeout=30
    ).stderr

    assert run(env, "pause", "delta").strip() == "paused delta"
    queues = json.loads(run(env, "queues", "--json"))
    assert any(r["routing_key"] == "delta" and r["paused"] and r["ready"] == 1 for r in queues["routes"])
    run(env, "resume", "delta")
    assert client.paused() == []

    other = client.submit_job("work", None, routing_key="alpha")
    run(env, "cancel", other)
    job = client.get_job(other)
    assert job is not None and job.status.value == "cancelled"
    assert "removed 1 ready job(s)" in run(env, "purge", "delta", "--yes")
    assert client.queue_stats().ready("delta", "normal") == 0
    assert json.loads(run(env, "running", "--json")) == []

    run(env, "limits", "set", "--job-name", "send", "--rate", "10/s")
    assert "per routing key (Redis Cluster)" in run(env, "limits", "list")

    handle = client.submit(chain(sig("a", None, routing_key="beta"), sig("b", None, routing_key="beta")))
    shown = json.loads(run(env, "workflow", handle.id, "--json"))
    assert shown["id"] == handle.id and shown["state"] == "running"
    run(env, "result", handle.job_ids[0], code=1)

    with connection.sync_client(cluster.url) as r:
        assert r.smembers("bananas:routing_keys") == {b"delta", b"alpha", b"beta"}


def test_migration_mode_is_one_line_on_cluster(env: dict[str, str]) -> None:
    done = subprocess.run(
        [*bananas_argv(), "submit", "work"], env={**env, "BANANAS_COMPAT": "original"},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and "Redis Cluster" in done.stderr
