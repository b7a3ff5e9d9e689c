"""The fleet read model's pure parts: worker entries, lease tokens, the pause hash."""

from __future__ import annotations

from bananas import Priority, WorkerInfo
from bananas.core.fleet import WORKER_FIELDS, beat_fields, parse_paused, worker_hash, worker_of_token


def test_worker_entry_round_trips_with_exactly_the_public_fields() -> None:
    entry = worker_hash(host="h", pid=7, routing_keys=["gpu", "email"], priorities=["high", "low"],
                        queue_selection="strict", concurrency=4, started_at=100.0, version="1.2",
                        mode="thin", handlers=["b", "a,comma"], lease_seconds=30)  # fmt: skip
    info = WorkerInfo.from_hash(
        "h:7:ab", {k.encode(): v.encode() for k, v in {**entry, **beat_fields(105.5, 2, 9, 3)}.items()}
    )
    assert list(info.to_json()) == list(WORKER_FIELDS)
    assert info.to_json() == {
        "id": "h:7:ab", "host": "h", "pid": 7, "routing_keys": ["gpu", "email"], "priorities": ["high", "low"],
        "queue_selection": "strict", "concurrency": 4, "running": 2, "processed": 9, "failed": 3,
        "started_at": 100.0, "heartbeat_at": 105.5, "version": "1.2", "mode": "thin", "handlers": ["a,comma", "b"],
    }  # fmt: skip
    assert info.listens_on("gpu") and info.can_run("email", "b") and not info.can_run("default", "b")


def test_an_older_workers_entry_still_reads() -> None:
    info = WorkerInfo.from_hash("x", {b"host": b"h", b"pid": b"1", b"routing_keys": b"gpu", b"heartbeat": b"5.0"})
    assert info.routing_keys == ["gpu"] and info.heartbeat_at == 5.0 and info.handlers == [] and info.processed == 0


def test_scheduler_only_workers_are_not_consumers() -> None:
    info = WorkerInfo.from_hash("x", {"routing_keys": "gpu", "mode": "scheduler-only", "handlers": '["a"]'})
    assert not info.listens_on("gpu") and not info.can_run("gpu", "a")


def test_the_worker_id_is_read_from_a_lease_token() -> None:
    assert worker_of_token("host:123:abcd1234:17") == "host:123:abcd1234"
    assert worker_of_token("weird") == "weird"


def test_pause_hash_entries() -> None:
    found = parse_paused({b"gpu:low": b"10.5", b"email": b"3", b"bad:urgent": b"1"})
    assert [(p.routing_key, p.priority, p.since) for p in found] == [("email", None, 3.0), ("gpu", Priority.LOW, 10.5)]
    assert found[1].to_json() == {"routing_key": "gpu", "priority": "low", "since": 10.5}
