"""``rediss://`` TLS and ACL users from the URL, end to end against a real server
started with TLS and a least-privilege ACL user (see conftest.py)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from secure_server import PASSWORD, USER, SecureServer
from security_helpers import bananas, cli_env, wait_until, worker_process

from bananas import AsyncClient, Client, Job, JobStatus, Registry, Worker, WorkerSettings
from bananas.cli.main import cli


async def test_client_and_worker_run_a_job_over_tls_as_an_acl_user(tls: SecureServer) -> None:
    url = tls.url()
    assert url.startswith(f"rediss://{USER}:{PASSWORD}@127.0.0.1:") and "ssl_ca_certs=" in url
    done: list[str] = []
    registry = Registry()

    @registry.handler("resize")
    async def resize(job: Job) -> dict[str, int]:
        done.append(job.id)
        return {"area": job.payload["w"] * job.payload["h"]}

    with Client(url) as client:
        assert client.redis.acl_whoami() == USER
        assert client.redis.connection_pool.connection_class.__name__ == "SSLConnection"
        job_id = client.submit_job("resize", {"w": 2, "h": 3}, "high", routing_key="gpu")
    async with AsyncClient(url) as aclient:
        other_id = await aclient.submit_job("resize", {"w": 1, "h": 1}, routing_key="gpu")
        worker = Worker(registry, WorkerSettings(redis_url=url, routing_keys=("gpu",), shutdown_grace=5))
        task = asyncio.create_task(worker.run())
        for _ in range(500):
            jobs = [await aclient.get_job(i) for i in (job_id, other_id)]
            if all(j is not None and j.status is JobStatus.COMPLETED for j in jobs):
                break
            await asyncio.sleep(0.02)
        worker.stop()
        await stopped(task)
    assert sorted(done) == sorted([job_id, other_id])
    assert all(j is not None and j.status is JobStatus.COMPLETED for j in jobs)


def test_cli_worker_and_submit_over_tls(tls: SecureServer, tmp_path: Path) -> None:
    env = cli_env(tls.url())
    log = tmp_path / "worker.log"
    with worker_process(log, "--routing-keys", "email", env=env) as worker:
        submitted = bananas("submit", "send_email", "--payload", '{"to": "a@b.c"}', "--routing-key", "email", env=env)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        with tls.admin() as admin:
            wait_until(lambda: admin.lrange("test:ran", 0, -1), what="the job to run over TLS")
            assert admin.lrange("test:ran", 0, -1)[0].decode().startswith(f"{job_id}|send_email|email|")
        shown = bananas("job", job_id, env=env)
        assert shown.returncode == 0 and '"status": "completed"' in shown.stdout
        queues = bananas("queues", env=env)
        assert queues.returncode == 0 and "email" in queues.stdout
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    output = log.read_text()
    assert PASSWORD not in output and "Traceback" not in output
    for run in (submitted, shown, queues):
        assert PASSWORD not in run.stdout + run.stderr


def test_tls_is_really_required(tls: SecureServer) -> None:
    plain = f"redis://{USER}:{PASSWORD}@127.0.0.1:{tls.port}/0"
    without_ca = tls.url(ca=False)
    for url, fragment in ((plain, "cannot reach Redis"), (without_ca, "CERTIFICATE_VERIFY_FAILED")):
        done = bananas("submit", "task", env=cli_env(url), timeout=60)
        assert done.returncode == 3 and fragment in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and PASSWORD not in done.stderr


def test_the_acl_user_needs_no_more_than_its_own_keys(secure: SecureServer) -> None:
    """Bananas runs with ``~bananas:* &bananas:* +@all -@dangerous``: the ACL is enforced
    (a foreign key is refused) and yet submit, read and stats all work."""
    with Client(secure.url()) as client:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.redis.set("someone-elses-key", 1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.redis.flushall()
        job_id = client.submit_job("task", [1, 2, 3], routing_key="gpu")
        assert client.get_job(job_id) is not None
        assert client.queue_stats().ready("gpu", "normal") == 1


def test_a_wrong_password_is_refused_with_a_masked_error(secure: SecureServer) -> None:
    wrong = "Wr0ng-Pw-Never-Printed"
    env = cli_env(secure.url(password=wrong))
    runs = [bananas("submit", "task", env=env)]  # a real process...
    for args in (["queues"],):  # ...and in-process (each failed connect costs ~2.5 s of retries)
        result = CliRunner().invoke(cli, args, env={"REDIS_URL": secure.url(password=wrong)})
        runs.append(subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr))
    for done in runs:
        assert done.returncode == 3, (done.args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bananas: error: cannot reach Redis"), done.stderr
        assert "invalid username-password pair" in lines[0] or "WRONGPASS" in lines[0]
        assert wrong not in done.stdout + done.stderr
    with secure.admin() as admin:
        assert admin.dbsize() == 0


async def stopped(task: asyncio.Task[None], timeout: float = 30.0) -> None:
    """Wait for a stopped worker's ``run()`` to return, without ever hanging the suite:
    on timeout the task is cancelled (not awaited) and the test fails."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise AssertionError(f"worker did not stop within {timeout}s")
    task.result()
