"""Issue 9, item 16: a ``Client`` or ``AsyncClient`` that waited for results and is then
garbage collected, or left open when the program ends, cleans up without a word (no
"Task was destroyed but it is pending!"), and its background thread stops."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROLOGUE = """
import asyncio, gc, sys, threading
from bananas import AsyncClient, Client, Registry, Worker, WorkerSettings
url = sys.argv[1]
registry = Registry()

@registry.handler("add")
def add(job):
    return job.payload["a"] + 1

def start_worker():
    stop = threading.Event()
    async def main():
        worker = Worker(registry, WorkerSettings(redis_url=url, shutdown_grace=1))
        task = asyncio.create_task(worker.run())
        while not stop.is_set():
            await asyncio.sleep(0.05)
        worker.stop()
        await task
    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    return stop, thread

stop, worker_thread = start_worker()
"""

SCENARIOS = {
    "sync left open at exit": """
client = Client(url)
assert client.submit_and_wait("add", {"a": 1}, timeout=20) == 2
assert client.get_result(client.submit_job("add", {"a": 2}), timeout=20) == 3
print("DONE")
""",
    "sync collected": """
def use():
    client = Client(url)
    assert client.submit_and_wait("add", {"a": 1}, timeout=20) == 2
    assert client.get_result(client.submit_job("add", {"a": 2}), timeout=20) == 3
use()
gc.collect()
for _ in range(100):
    if not any(t.name == "bananas-results" for t in threading.enumerate()):
        break
    threading.Event().wait(0.05)
assert not any(t.name == "bananas-results" for t in threading.enumerate()), "the result thread outlived its client"
print("DONE")
""",
    "async collected while the loop runs": """
async def main():
    async def use():
        client = AsyncClient(url)
        assert await client.submit_and_wait("add", {"a": 1}, timeout=20) == 2
        assert await client.get_result(await client.submit_job("add", {"a": 5}), timeout=20) == 6
    await use()
    gc.collect()
    await asyncio.sleep(0.3)
    gc.collect()
    listeners = [t for t in asyncio.all_tasks() if t.get_name() == "bananas-results"]
    assert listeners == [], listeners
asyncio.run(main())
print("DONE")
""",
    "async left open at exit": """
async def main():
    client = AsyncClient(url)
    assert await client.submit_and_wait("add", {"a": 1}, timeout=20) == 2
    return client
kept = asyncio.run(main())
print("DONE")
""",
}


def _guarded(body: str) -> str:
    """The scenario, with the worker stopped whatever happens (a failed assert included)."""
    indented = "".join(f"    {line}\n" for line in body.strip().splitlines())
    return f"try:\n{indented}finally:\n    stop.set()\n    worker_thread.join()\n"


@pytest.mark.parametrize("body", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_client_cleans_up_silently(body: str, redis_url: str, cli_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", PROLOGUE + _guarded(body), redis_url],
        env=cli_env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "DONE" in done.stdout
    assert "destroyed but it is pending" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
