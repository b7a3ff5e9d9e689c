"""The worker metrics listener, fed job events directly (no Redis, no HTTP)."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import generate_latest

from bananas.events import EventKind, JobEvent
from bananas.metrics import WorkerMetrics


def event(kind: EventKind, job_id: str = "j1", name: str = "resize", **fields: object) -> JobEvent:
    base: dict[str, object] = {
        "kind": kind, "job_id": job_id, "name": name, "routing_key": "gpu", "priority": "high",
        "attempt": 1, "worker_id": "w", "at": 100.0,
    }  # fmt: skip
    base.update(fields)
    return JobEvent(**base)  # type: ignore[arg-type]


def value(metrics: WorkerMetrics, metric: str, /, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


GPU = {"routing_key": "gpu", "priority": "high"}


def test_outcomes_are_counted_by_routing_key_priority_and_name() -> None:
    metrics = WorkerMetrics(["resize"])
    metrics(event(EventKind.STARTED))
    metrics(event(EventKind.RETRYING, duration_s=0.2, retry_at=104.0))
    metrics(event(EventKind.STARTED, attempt=2))
    metrics(event(EventKind.DEAD, attempt=2, duration_s=0.3))
    metrics(event(EventKind.STARTED, "j2"))
    metrics(event(EventKind.SUCCEEDED, "j2", duration_s=0.01))
    for kind in (EventKind.RECOVERED, EventKind.CANCELLED, EventKind.EXPIRED):
        metrics(event(kind, "j3"))
    labels = {**GPU, "name": "resize"}
    assert value(metrics, "bananas_jobs_started_total", **labels) == 3
    assert value(metrics, "bananas_jobs_failed_total", **labels) == 2
    assert value(metrics, "bananas_jobs_retried_total", **labels) == 1
    assert value(metrics, "bananas_jobs_dead_total", **labels) == 1
    assert value(metrics, "bananas_jobs_succeeded_total", **labels) == 1
    assert value(metrics, "bananas_jobs_recovered_total", **labels) == 1
    assert value(metrics, "bananas_jobs_cancelled_total", **labels) == 1
    assert value(metrics, "bananas_jobs_expired_total", **labels) == 1
    assert value(metrics, "bananas_job_duration_seconds_count", **labels) == 3
    assert abs((value(metrics, "bananas_job_duration_seconds_sum", **labels) or 0) - 0.51) < 1e-9
    assert value(metrics, "bananas_job_duration_seconds_bucket", **labels, le="0.01") == 1


def test_names_without_a_handler_count_as_other() -> None:
    metrics = WorkerMetrics(["resize"])
    for i in range(50):
        metrics(event(EventKind.PARKED, f"p{i}", name=f"invented-{i}"))
        metrics(event(EventKind.EXPIRED, f"e{i}", name=f"invented-{i}"))
    assert value(metrics, "bananas_jobs_expired_total", **GPU, name="other") == 50
    text = generate_latest(metrics.registry).decode()
    assert "invented" not in text


def test_running_gauge_follows_starts_and_their_ends_only() -> None:
    metrics = WorkerMetrics(["resize"])
    metrics(event(EventKind.STARTED, "a"))
    metrics(event(EventKind.STARTED, "b"))
    assert value(metrics, "bananas_worker_jobs_running", routing_key="gpu") == 2
    metrics(event(EventKind.SUCCEEDED, "a", duration_s=0.1))
    # Another worker's job recovered here, a job that never started here: no change.
    metrics(event(EventKind.RECOVERED, "zzz"))
    metrics(event(EventKind.DEAD, "never-started", error="malformed"))
    assert value(metrics, "bananas_worker_jobs_running", routing_key="gpu") == 1
    # A refused late ack still ends the attempt here, but counts no outcome.
    metrics(event(EventKind.SUCCEEDED, "b", duration_s=0.1, applied=False))
    assert value(metrics, "bananas_worker_jobs_running", routing_key="gpu") == 0
    assert value(metrics, "bananas_jobs_succeeded_total", **GPU, name="resize") == 1


def test_no_ids_hosts_or_pids_in_labels() -> None:
    metrics = WorkerMetrics(["resize"])
    metrics(event(EventKind.STARTED, "job-id-123", worker_id="myhost:4242:beef"))
    metrics(event(EventKind.SUCCEEDED, "job-id-123", duration_s=1.0, worker_id="myhost:4242:beef"))
    text = generate_latest(metrics.registry).decode()
    for leaked in ("job-id-123", "myhost", "4242"):
        assert leaked not in text


def test_a_killed_supervisors_metrics_directory_is_removed_by_the_next(tmp_path: Path) -> None:
    import subprocess
    import sys

    from bananas.metrics.group import PREFIX, remove_stale_directories

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    stale = tmp_path / f"{PREFIX}{dead_pid}-abc"
    live = tmp_path / f"{PREFIX}{os.getpid()}-def"
    for directory in (stale, live):
        directory.mkdir()
        (directory / "counter_1.db").write_bytes(b"")
    assert remove_stale_directories(tmp_path) == [stale]
    assert not stale.exists() and live.exists()
