"""Scenario 10: Redis full (``maxmemory`` reached under ``noeviction``) while jobs run,
then memory freed (issue 9, item 3).

While Redis refuses writes for memory, a worker takes no new job, keeps the ones it
runs (its lease extensions still succeed, so no other worker takes them back), says so
in one log line with the fix, and retries its refused writes. Once memory is freed the
queued jobs run. Lost 0, no job run twice, none parked as a poison pill.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bananas import Client, Priority
from bananas.embedded import EmbeddedServer
from bananas.redis import keys
from faults.harness import (
    ROUTING_KEYS,
    SOAK,
    Fleet,
    assert_quiet,
    check,
    records,
    runs,
    scaled,
    wait_completed,
    wait_until,
    workers_ready,
)

pytestmark = pytest.mark.timeout(1800 if SOAK else 120)

LEASE = 1.0
JOB_SECONDS = 3.0
FULL_SECONDS = 4.0  # four lease lengths: without extensions every running job would be taken back
FILLER = "filler:"


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path / "small", extra_args=("--maxmemory", "24mb", "--maxmemory-policy", "noeviction"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _starts(store: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in store.hgetall("test:starts").items()}


def _fill(r: redis.Redis) -> int:
    """Write 64 KiB values until Redis refuses: the server is full. Then lower the limit
    1 MiB below what is used, so the jobs' own small writes and frees cannot bring it
    back under by chance: it stays full until the filler is deleted."""
    n = 0
    while True:
        try:
            r.set(f"{FILLER}{n}", b"x" * 65536)
        except redis.exceptions.OutOfMemoryError:
            break
        n += 1
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", used - 1024 * 1024)
    return n


def test_redis_full_then_freed(fleet: Fleet, small_server: EmbeddedServer, store: redis.Redis) -> None:
    url = small_server.url
    sut = redis.Redis.from_url(url)
    procs = [fleet.worker(url, concurrency=4, lease=LEASE) for _ in range(2)]
    wait_until(workers_ready(sut, 2), 30, "2 workers")
    started = time.monotonic()
    running = 8  # every slot of both workers
    queued = scaled(16)
    with Client(url) as client:
        ids = [
            client.submit_job("slow", {"seconds": JOB_SECONDS}, Priority.NORMAL, routing_key=ROUTING_KEYS[i % 3])
            for i in range(running + queued)
        ]
        wait_until(lambda: len(_starts(store)) >= running, 20, "every slot busy")
        filled = _fill(sut)
        started_when_full = len(_starts(store))
        time.sleep(FULL_SECONDS)
        started_while_full = len(_starts(store)) - started_when_full
        # Still full: the workers wait for memory and took nothing new.
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            sut.set("probe", "x")
        for start in range(0, filled, 500):
            sut.delete(*[f"{FILLER}{n}" for n in range(start, min(filled, start + 500))])
        freed_at = time.monotonic() - started
        wait_completed(sut, ids, timeout=60 * (SOAK + 1))
    outcome = check(
        "redis_full",
        sut,
        store,
        ids,
        started,
        full_seconds=FULL_SECONDS,
        lease_seconds=LEASE,
        job_seconds=JOB_SECONDS,
        filler_mb=filled * 64 // 1024,
        started_while_full=started_while_full,
        freed_at=f"{freed_at:.1f}s",
    )
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    assert sut.llen(keys.DEAD) == 0, "a job was parked in the dead letters"
    assert started_while_full == 0, "a worker took new jobs while Redis was full"
    assert all(n == 1 for n in _starts(store).values()), "a job was started twice"
    assert all(n == 1 for n in runs(store).values())
    for record in records(sut, ids).values():
        assert record is not None and "recoveries" not in record and record["attempts"] == 1
    assert [p.name for p in procs if not p.alive()] == []
    for proc in procs:
        text = proc.log_text()
        said = text.count("redis is out of memory")
        assert said == 1, f"{proc.name} said it {said} times:\n{text[-3000:]}"
        assert "raise Redis' maxmemory" in text
        assert "Future exception was never retrieved" not in text
        assert "Traceback" not in text, text[-3000:]
    assert_quiet(sut)
    sut.close()
