"""Backward compatibility with records written by the original Go service and its
Python and TypeScript SDKs, and malformed records found in Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from support import Recorder, Workers, eventually, job_record, status_of, strings

from bananas import Client

# A copy of shared/vectors/legacy-job-records.json, so the suite runs from any checkout.
VECTORS = Path(__file__).resolve().parent.parent / "data" / "legacy-job-records.json"
ALL_NAMES = ("send_email", "process_image", "generate_report", "resize", "train_model", "task")
UNKNOWN = {"x_future_field": {"nested": [1, "two"]}, "tenant": "acme"}


def load_vectors() -> list[dict[str, Any]]:
    return list(json.loads(VECTORS.read_text())["records"])


def write_raw(r: redis.Redis, vector: dict[str, Any], extra: dict[str, Any]) -> str:
    """Write a vector as its producer did: SET the record, then LPUSH/ZADD its id."""
    record = {**vector["record"], **extra}
    job_id = record["id"]
    r.set(f"bananas:job:{job_id}", json.dumps(record))
    if "list" in vector:
        r.lpush(vector["list"], job_id)
    else:
        r.zadd(vector["zset"], {job_id: time.time() - 1})
    return str(job_id)


async def test_every_legacy_record_runs_and_keeps_unknown_fields(workers: Workers, r: redis.Redis) -> None:
    vectors = load_vectors()
    expected_pool: dict[str, str] = {}
    for vector in vectors:
        job_id = write_raw(r, vector, UNKNOWN)
        key = vector["record"].get("routing_key") or "default"
        expected_pool[job_id] = key
    assert set(expected_pool.values()) == {"default", "gpu"}
    default = Recorder("default", ALL_NAMES)
    gpu = Recorder("gpu", ALL_NAMES)
    await workers.start(default.registry, routing_keys=("default",))
    await workers.start(gpu.registry, routing_keys=("gpu",))

    await eventually(
        lambda: all(status_of(r, j) == "completed" for j in expected_pool),
        what="every legacy record to complete",
    )
    runs = default.runs + gpu.runs
    assert sorted(run[1] for run in runs) == sorted(expected_pool)
    by_id = {vector["record"]["id"]: vector["record"] for vector in vectors}
    for label, job_id, routing_key, priority, payload in runs:
        original = by_id[job_id]
        assert label == routing_key == expected_pool[job_id]
        assert priority == original["priority"]
        assert payload == original["payload"]
    for job_id in expected_pool:
        stored = job_record(r, job_id)
        assert stored is not None
        for name, value in UNKNOWN.items():
            assert stored[name] == value, f"{job_id} lost the unknown field {name}"
        assert stored["routing_key"] == expected_pool[job_id]
        assert stored["name"] == by_id[job_id]["name"]
        assert stored["max_retries"] == by_id[job_id]["max_retries"]
    assert r.llen("bananas:queue:dead") == 0


async def test_record_without_routing_key_submitted_raw_to_routed_default(workers: Workers, r: redis.Redis) -> None:
    """A newer producer that writes no routing_key but uses the routed default list."""
    r.set(
        "bananas:job:raw-1",
        '{"id":"raw-1","name":"task","payload":{"k":1},"status":"pending","priority":"normal",'
        '"created_at":"2025-11-10T04:16:33.123456789Z","updated_at":"2025-11-10T04:16:33Z"}',
    )
    r.lpush("bananas:route:default:queue:normal", "raw-1")
    rec = Recorder()
    await workers.start(rec.registry)
    await eventually(lambda: status_of(r, "raw-1") == "completed", what="the raw record to run")
    assert rec.runs == [("", "raw-1", "default", "normal", {"k": 1})]
    assert job_record(r, "raw-1")["max_retries"] == 3  # type: ignore[index]


MALFORMED = [
    ("not-json", b"{this is not json", "not valid JSON"),
    ("json-list", b"[1, 2, 3]", "not an object"),
    ("no-id", b'{"name":"task","payload":1,"created_at":"2025-11-10T04:16:33Z"}', "no id"),
    ("no-record", None, "record missing"),
    (
        "bad-field",
        b'{"id":"bad-field","name":"task","priority":"urgent","created_at":"2025-11-10T04:16:33Z"}',
        "urgent",
    ),
]


@pytest.mark.parametrize("where", ["routed", "legacy", "scheduled"])
async def test_malformed_records_go_to_dead_letters_and_worker_keeps_running(
    client: Client, workers: Workers, r: redis.Redis, where: str
) -> None:
    for job_id, raw, _ in MALFORMED:
        if raw is not None:
            r.set(f"bananas:job:{job_id}", raw)
        if where == "routed":
            r.lpush("bananas:route:default:queue:high", job_id)
        elif where == "legacy":
            r.lpush("bananas:queue:normal", job_id)
        else:
            r.zadd("bananas:queue:scheduled", {job_id: time.time() - 1})
    rec = Recorder()
    await workers.start(rec.registry)
    ids = [job_id for job_id, _, _ in MALFORMED]
    await eventually(lambda: sorted(strings(r.lrange("bananas:queue:dead", 0, -1))) == sorted(ids), what="dead")
    for job_id, raw, reason in MALFORMED:
        stored = job_record(r, job_id)
        assert stored is not None and stored["status"] == "failed"
        assert reason in stored["error"], stored["error"]
        if raw is not None:
            assert stored["original_record"] == raw.decode()  # the data is kept for inspection
    assert r.zcard("bananas:queue:scheduled") == 0
    assert r.zcard("bananas:leases") == 0

    good = client.submit_job("task", "still alive", "high")
    await eventually(lambda: status_of(r, good) == "completed", what="a good job after the bad ones")
    assert rec.ids == [good]
