"""Chains, groups and chords across routing keys, with real workers (issue 14)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

import bananas
from bananas import AsyncClient, Client, Job, JobFailedError, Registry, Worker
from bananas.errors import BananasError, ValidationError
from bananas.worker.signals import Fail

StartWorker = Callable[..., Awaitable[Worker]]


def pools_registry(seen: list[tuple[str, str, Any]]) -> Registry:
    """Handlers that record (name, routing key, parent_result) and return something
    that depends on their input, so the order of hand-offs shows in the result."""
    registry = Registry()

    @registry.handler("resize")
    def resize(job: Job) -> dict[str, Any]:
        seen.append(("resize", job.routing_key, job.parent_result))
        return {"resized": job.payload["image"], "w": job.payload.get("w", 100)}

    @registry.handler("email")
    def email(job: Job) -> str:
        seen.append(("email", job.routing_key, job.parent_result))
        return f"sent {job.parent_result}"

    @registry.handler("square")
    def square(job: Job) -> int:
        seen.append(("square", job.routing_key, job.parent_result))
        return int(job.payload) ** 2

    @registry.handler("total")
    def total(job: Job) -> int:
        seen.append(("total", job.routing_key, job.parent_result))
        return sum(v or 0 for v in job.parent_result)

    @registry.handler("add")
    def add(job: Job) -> int:
        seen.append(("add", job.routing_key, job.parent_result))
        return int(job.parent_result or 0) + int(job.payload)

    @registry.handler("broken")
    def broken(job: Job) -> None:
        seen.append(("broken", job.routing_key, job.parent_result))
        raise Fail("this step always fails")

    return registry


async def run_pools(start_worker: StartWorker, registry: Registry) -> None:
    await start_worker(registry, routing_keys=("gpu",))
    await start_worker(registry, routing_keys=("email", "default"))


async def wait(handle: bananas.WorkflowHandle, timeout: float = 20) -> Any:
    return await asyncio.to_thread(handle.wait, timeout)


async def test_chain_runs_steps_on_their_pools_and_passes_results(redis_url: str, start_worker: StartWorker) -> None:
    seen: list[tuple[str, str, Any]] = []
    await run_pools(start_worker, pools_registry(seen))
    with Client(redis_url) as client:
        handle = client.submit(
            bananas.chain(
                bananas.sig("resize", {"image": "cat.png"}, routing_key="gpu"),
                bananas.sig("email", routing_key="email"),
            )
        )
        assert isinstance(handle, bananas.WorkflowHandle) and handle.id
        result = await wait(handle)
        assert result == "sent {'resized': 'cat.png', 'w': 100}"
        assert [(n, k) for n, k, _ in seen] == [("resize", "gpu"), ("email", "email")]
        assert seen[1][2] == {"resized": "cat.png", "w": 100}
        info = client.get_workflow(handle.id)
        assert info is not None and info.state == "completed" and info.result == result
        assert [(s.name, s.routing_key, s.status) for s in info.steps] == [
            ("resize", "gpu", "completed"),
            ("email", "email", "completed"),
        ]
        assert client.wait_workflow(handle.id, timeout=1) == result


async def test_chord_callback_gets_results_in_group_order(redis_url: str, start_worker: StartWorker) -> None:
    seen: list[tuple[str, str, Any]] = []
    await run_pools(start_worker, pools_registry(seen))
    with Client(redis_url) as client:
        members = [bananas.sig("square", n, routing_key="gpu" if n % 2 else "default") for n in range(1, 9)]
        handle = client.submit(bananas.chord(bananas.group(*members), bananas.sig("total", routing_key="email")))
        assert await wait(handle) == sum(n * n for n in range(1, 9))
        callbacks = [p for name, _, p in seen if name == "total"]
        assert callbacks == [[n * n for n in range(1, 9)]]
        info = client.get_workflow(handle.id)
        assert info is not None and [len(stage) for stage in info.stages] == [8, 1]


async def test_group_alone_returns_the_list_and_chain_of_stages(redis_url: str, start_worker: StartWorker) -> None:
    seen: list[tuple[str, str, Any]] = []
    await run_pools(start_worker, pools_registry(seen))
    with Client(redis_url) as client:
        grouped = client.submit(bananas.group([bananas.sig("square", n) for n in (3, 1, 2)]))
        assert await wait(grouped) == [9, 1, 4]
        # chain(step, group, step, step): the group's members each get the step's result.
        handle = client.submit(
            bananas.chain(
                bananas.sig("add", 1, routing_key="gpu"),
                bananas.group(bananas.sig("add", 10), bananas.sig("add", 20, routing_key="gpu")),
                bananas.sig("total", routing_key="email"),
                bananas.sig("add", 100),
            )
        )
        assert await wait(handle) == (1 + 10) + (1 + 20) + 100


async def test_failed_step_stops_the_chain_and_fails_the_workflow(
    redis_url: str, start_worker: StartWorker, r: redis.Redis
) -> None:
    seen: list[tuple[str, str, Any]] = []
    await run_pools(start_worker, pools_registry(seen))
    with Client(redis_url) as client:
        handle = client.submit(
            bananas.chain(bananas.sig("add", 1), bananas.sig("broken", routing_key="gpu"), bananas.sig("add", 2))
        )
        with pytest.raises(JobFailedError, match="this step always fails"):
            await wait(handle)
        info = client.get_workflow(handle.id)
        assert info is not None and info.state == "failed"
        assert [s.status for s in info.steps] == ["completed", "failed", "skipped"]
        assert info.failed_step == info.steps[1].id
        assert [name for name, _, _ in seen].count("add") == 1
        # The failed step is a dead letter like any other; the last step never queued.
        assert r.exists(f"bananas:job:{info.steps[2].id}") == 0


async def test_chord_member_failing_for_good(redis_url: str, start_worker: StartWorker) -> None:
    seen: list[tuple[str, str, Any]] = []
    await run_pools(start_worker, pools_registry(seen))
    with Client(redis_url) as client:
        members = [bananas.sig("square", 2), bananas.sig("broken"), bananas.sig("square", 3)]
        strict = client.submit(bananas.chord(members, bananas.sig("total")))
        with pytest.raises(JobFailedError):
            await wait(strict)
        await asyncio.sleep(0.3)
        assert not [n for n, _, _ in seen if n == "total"], "the callback of a failed chord must not run"
        info = client.get_workflow(strict.id)
        assert info is not None and info.state == "failed" and info.steps[-1].status == "skipped"
        # allow_failure=True: the failed member's result is None and the callback runs.
        lenient = client.submit(bananas.chord(members, bananas.sig("total"), allow_failure=True))
        assert await wait(lenient) == 4 + 9
        assert [p for n, _, p in seen if n == "total"] == [[4, None, 9]]


async def test_async_client_workflows(redis_url: str, start_worker: StartWorker) -> None:
    seen: list[tuple[str, str, Any]] = []
    await run_pools(start_worker, pools_registry(seen))
    async with AsyncClient(redis_url) as client:
        handle = await client.submit(bananas.chain(bananas.sig("add", 1), bananas.sig("add", 2)))
        assert isinstance(handle, bananas.AsyncWorkflowHandle)
        assert await handle.wait(20) == 3
        info = await client.get_workflow(handle.id)
        assert info is not None and info.state == "completed"
        assert await client.wait_workflow(handle.id, 1) == 3


def test_route_table_applies_to_signatures_and_bad_input(redis_url: str, r: redis.Redis) -> None:
    router = bananas.Router().route("resize", "gpu", "high")
    with Client(redis_url, router=router) as client:
        handle = client.submit(bananas.chain(bananas.sig("resize", {"image": "x"}), bananas.sig("email")))
        assert r.llen("bananas:route:gpu:queue:high") == 1
        info = client.get_workflow(handle.id)
        assert info is not None
        assert [(s.routing_key, s.status) for s in info.steps] == [("gpu", "pending"), ("default", "waiting")]
        assert r.ttl(f"bananas:workflow:{handle.id}") > 0
        with pytest.raises(ValidationError, match="stage 1 step 0"):
            client.submit(bananas.chain(bananas.sig("ok"), bananas.sig("bad", routing_key="no spaces")))
        with pytest.raises(ValidationError):
            bananas.group(bananas.chain(bananas.sig("a")))  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            bananas.chain()
        with pytest.raises(BananasError, match="no workflow"):
            client.wait_workflow("nope", timeout=0.1)
        assert client.get_workflow("nope") is None
        # Nothing of the refused workflow was written.
        assert len(r.keys("bananas:workflow:*")) == 1


async def test_two_members_finishing_together_enqueue_the_callback_once(
    redis_url: str, start_worker: StartWorker, r: redis.Redis
) -> None:
    """Many tiny chords on two workers: members end at the same moment all the time."""
    seen: list[tuple[str, str, Any]] = []
    registry = pools_registry(seen)
    await start_worker(registry, routing_keys=("default",), concurrency=8)
    await start_worker(registry, routing_keys=("default",), concurrency=8)
    lock = threading.Lock()
    with Client(redis_url) as client:
        handles = [
            client.submit(bananas.chord([bananas.sig("square", i), bananas.sig("square", i + 1)], bananas.sig("total")))
            for i in range(40)
        ]
        results = await asyncio.gather(*(wait(h) for h in handles))
    with lock:
        totals = [p for n, _, p in seen if n == "total"]
    assert results == [i * i + (i + 1) ** 2 for i in range(40)]
    assert len(totals) == 40
    raw = r.get(f"bananas:job:{handles[0].job_ids[-1]}")
    assert raw is not None and json.loads(raw)["parent_result"] == [0, 1]


def test_cancelling_a_waiting_step_fails_its_workflow(redis_url: str) -> None:
    with Client(redis_url) as client:
        handle = client.submit(bananas.chain(bananas.sig("a"), bananas.sig("b")))
        assert client.cancel(handle.job_ids[0]) is True
        with pytest.raises(JobFailedError, match="cancelled"):
            handle.wait(5)
        info = client.get_workflow(handle.id)
        assert info is not None and info.state == "failed"
        assert [s.status for s in info.steps] == ["cancelled", "skipped"]


def test_workflow_cli(redis_url: str, cli_env: dict[str, str]) -> None:
    import subprocess
    import sys

    with Client(redis_url) as client:
        handle = client.submit(bananas.chain(bananas.sig("a", routing_key="gpu"), bananas.sig("b")))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "bananas", "workflow", *args]
        return subprocess.run(argv, env=cli_env, capture_output=True, text=True, timeout=60)

    shown = run(handle.id)
    assert shown.returncode == 0, shown.stderr
    assert f"workflow {handle.id}: running" in shown.stdout
    assert "gpu" in shown.stdout and "waiting" in shown.stdout
    as_json = run(handle.id, "--json")
    data = json.loads(as_json.stdout)
    assert data["state"] == "running" and [s["status"] for s in data["steps"]] == ["pending", "waiting"]
    missing = run("no-such-workflow")
    assert missing.returncode == 1 and missing.stderr.startswith("bananas: error: no workflow")
    assert "\n" not in missing.stderr.strip()
