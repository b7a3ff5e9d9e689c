"""Only JSON crosses the wire, and a handler's exception stays with its own job."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import redis
from click.testing import CliRunner

import bananas
from bananas import Client, Job, JobStatus, Registry, Worker, WorkerSettings
from bananas.cli.main import cli

PACKAGE = Path(bananas.__file__).resolve().parent
#: Serializers that can run code (or build arbitrary objects) when loading data.
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle", "yaml"}
TENANT_SECRET = "tenant-A-internal-detail-7781"


def test_no_unsafe_serializer_or_eval_in_the_package() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    offenders = []
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in UNSAFE_MODULES:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} calls {node.func.id}()")
    assert offenders == []


def test_lua_scripts_do_not_decode_or_run_payloads() -> None:
    for script in (PACKAGE / "redis" / "scripts").glob("*.lua"):
        text = script.read_text()
        for forbidden in ("loadstring", "cmsgpack", "dofile", "load("):
            assert forbidden not in text, f"{script.name} uses {forbidden}"


async def run_jobs(redis_url: str, registry: Registry, until: list[str], client: Client) -> None:
    worker = Worker(registry, WorkerSettings(redis_url=redis_url, shutdown_grace=5))
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(500):
            jobs = [client.get_job(i) for i in until]
            if all(j is not None and j.status in (JobStatus.COMPLETED, JobStatus.FAILED) for j in jobs):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("jobs did not finish")
    finally:
        worker.stop()
        await stopped(task)


async def test_everything_stored_is_json_and_pickles_stay_inert_strings(redis_url: str, r: redis.Redis) -> None:
    pickle_like = "cos\nsystem\n(S'echo pwned'\ntR."  # protocol-0 pickle text: must stay a string
    seen: list[object] = []
    registry = Registry()
    registry.add("echo", lambda job: seen.append(job.payload) or {"echoed": job.payload})
    with Client(redis_url) as client:
        ids = [client.submit_job("echo", {"p": pickle_like, "n": [1, 2.5, None, True]})]
        ids.append(client.schedule_job("echo", pickle_like, delay=0))
        await run_jobs(redis_url, registry, ids, client)
    assert seen == [{"p": pickle_like, "n": [1, 2.5, None, True]}, pickle_like]
    for key in r.scan_iter("bananas:job:*"):
        record = json.loads(r.get(key))  # type: ignore[arg-type]
        assert isinstance(record, dict) and record["status"] == "completed"


async def test_a_handler_traceback_stays_with_its_job(redis_url: str, r: redis.Redis) -> None:
    registry = Registry()

    @registry.handler("tenant_a_task")
    def fails(job: Job) -> None:
        raise RuntimeError(f"database said: {TENANT_SECRET}")

    registry.add("tenant_b_task", lambda job: None)
    with Client(redis_url) as client:
        failed_id = client.submit_job("tenant_a_task", None, routing_key="tenant-a", max_retries=0)
        other_id = client.submit_job("tenant_b_task", None, routing_key="tenant-b")
        worker_settings = WorkerSettings(redis_url=redis_url, routing_keys=("tenant-a", "tenant-b"), shutdown_grace=5)
        worker = Worker(registry, worker_settings)
        task = asyncio.create_task(worker.run())
        for _ in range(500):
            jobs = [client.get_job(i) for i in (failed_id, other_id)]
            if all(j is not None and j.status in (JobStatus.COMPLETED, JobStatus.FAILED) for j in jobs):
                break
            await asyncio.sleep(0.02)
        failed = client.get_job(failed_id)
        # Scan while the worker is still announced, so its presence keys are checked too.
        holders = sorted(key.decode() for key in r.scan_iter() if TENANT_SECRET in dump_text(r, key))
        worker.stop()
        await stopped(task)

    # Recorded on the job itself, with the traceback, for its owner and operators...
    assert failed is not None and failed.status is JobStatus.FAILED and failed.error is not None
    assert failed.error.startswith(f"RuntimeError: database said: {TENANT_SECRET}")
    assert "Traceback (most recent call last)" in failed.error
    # ...and nowhere else: only the job's own record and result carry it.
    assert set(holders) <= {f"bananas:job:{failed_id}", f"bananas:result:{failed_id}"}, holders
    assert f"bananas:job:{failed_id}" in holders

    # The shared, per-routing-key view shows counts, never errors.
    for args in (["queues"], ["queues", "--json"]):
        result = CliRunner().invoke(cli, args, env={"REDIS_URL": redis_url})
        assert result.exit_code == 0, result.output
        assert TENANT_SECRET not in result.output and "Traceback" not in result.output
        assert "RuntimeError" not in result.output
    with Client(redis_url) as client:
        assert TENANT_SECRET not in repr(client.queue_stats())


def dump_text(r: redis.Redis, key: bytes) -> str:
    """Every value stored under ``key``, whatever its type, as text."""
    kind = r.type(key).decode()  # type: ignore[union-attr]
    values: list[bytes] = []
    if kind == "string":
        values = [r.get(key) or b""]  # type: ignore[list-item]
    elif kind == "list":
        values = r.lrange(key, 0, -1)  # type: ignore[assignment]
    elif kind == "hash":
        values = [b for pair in r.hgetall(key).items() for b in pair]  # type: ignore[union-attr]
    elif kind == "set":
        values = list(r.smembers(key))  # type: ignore[arg-type]
    elif kind == "zset":
        values = [m for m, _ in r.zrange(key, 0, -1, withscores=True)]  # type: ignore[union-attr]
    elif kind == "stream":
        values = [str(e).encode() for e in r.xrange(key)]  # type: ignore[union-attr]
    return b"\n".join(values).decode(errors="replace")


async def stopped(task: asyncio.Task[None], timeout: float = 30.0) -> None:
    """Wait for a stopped worker's ``run()`` to return, without ever hanging the suite:
    on timeout the task is cancelled (not awaited) and the test fails."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise AssertionError(f"worker did not stop within {timeout}s")
    task.result()
