# ruff: noqa: RUF001  (the report prints typographic dashes and the multiplication sign)
"""The benchmark suite still runs (benchmarks/, docs/PERFORMANCE.md).

Runs the harness in its ``--smoke`` mode (N=500, one repeat, Bananas only) and the
scaling script with tiny sizes, each in a subprocess against its own embedded servers.
Nothing here asserts a speed: numbers on a shared CI machine mean nothing; only that
every figure produced a well-formed result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import profile_worker, report  # noqa: E402


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "JOB_", "BANANAS_", "REDIS_URL"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    )
    return proc


@pytest.mark.timeout(420)
def test_harness_smoke_runs_every_bananas_figure(tmp_path: Path) -> None:
    _run(["benchmarks.run", "--smoke", "--out", str(tmp_path), "--label", "smoke"], timeout=400)
    data = json.loads((tmp_path / "smoke.json").read_text())
    runs = {r["case"]: r for r in data["runs"]}
    assert set(runs) == {"submit", "submit_async", "bulk", "drain_p1", "drain_p2", "pickup_rk1", "pickup_rk5", "wait"}
    for case, run in runs.items():
        assert run["system"] == "bananas"
        assert not run.get("error"), (case, run)
        if run.get("unsupported"):
            assert case == "wait", (case, run)
            continue
        if case.startswith("pickup"):
            assert run["measured"] == 30 and 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"], run
        else:
            assert run["rate"] > 0 and run["seconds"] > 0, run
        if case.startswith("drain"):
            assert run["completed"] >= 500
    assert runs["pickup_rk5"]["routing_keys"] == 5
    meta = data["meta"]
    assert meta["cores"] and meta["server"]["version"] and meta["interpreters"]["bananas"]["python"]
    markdown = (tmp_path / "smoke.md").read_text()
    for title in ("Submit throughput", "Drain throughput", "Pickup latency", "Targets (issue 5)", "Goals (issue 15)"):
        assert title in markdown


@pytest.mark.timeout(300)
def test_scaling_smoke(tmp_path: Path) -> None:
    _run(["benchmarks.scaling", "--smoke", "--out", str(tmp_path), "--label", "scaling"], timeout=280)
    data = json.loads((tmp_path / "scaling.json").read_text())
    assert [row["depth"] for row in data["depth"]] == [10, 1000]
    assert [row["routing_keys"] for row in data["keys"]] == [1, 10]
    for row in data["depth"] + data["keys"]:
        assert row["call_us_p50"] > 0
    assert data["memory"]["record_bytes"] > 0 and data["memory"]["used_memory_delta_per_job"] > 0
    assert data["rss"]["idle_kib"] > 0 and data["rss"]["load_max_kib"] > 0
    assert "Redis memory per queued no-op job" in (tmp_path / "scaling.md").read_text()


@pytest.mark.timeout(120)
def test_queue_stats_benchmark_smoke() -> None:
    proc = _run(["benchmarks.queue_stats", "--keys", "20", "--jobs", "2000", "--workers", "4", "--in-flight", "20",
                 "--repeat", "1", "--no-save"], timeout=100)  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["queue_stats_round_trips"] == 4 and result["ready_total"] == 2000 - 20
    assert result["in_flight"] == 20 and result["workers"] == 4 and result["parked_lists"] == 2


def _synthetic_run(system: str, case: str, rep: int, **values: float) -> dict[str, object]:
    return {"system": system, "case": case, "figure": case.split("_")[0], "n": 100, "repeat": rep, **values}


def test_report_medians_ratios_and_targets() -> None:
    runs = []
    for rep, (b, p) in enumerate([(3000.0, 1000.0), (3300.0, 1100.0), (2700.0, 900.0)]):
        runs.append(_synthetic_run("bananas", "drain_p1", rep, rate=b, steady_rate=b * 1.2))
        runs.append(_synthetic_run("rq-simple", "drain_p1", rep, rate=p, steady_rate=p))
        runs.append(_synthetic_run("bananas", "pickup_rk1", rep, p50_ms=0.5, p95_ms=1.0, p99_ms=2.0, max_ms=3.0))
        runs.append(_synthetic_run("rq-simple", "pickup_rk1", rep, p50_ms=5.0, p95_ms=9.0, p99_ms=10.0, max_ms=20.0))
    runs.append(
        {"system": "rq-simple", "case": "submit_async", "figure": "submit_async", "n": 100, "unsupported": True}
    )
    runs.append({"system": "bananas", "case": "bulk", "figure": "bulk", "n": 100, "error": "boom"})
    summary = report.summarize(runs)
    drain = summary["drain_p1"]["bananas"]["rate"]
    assert (drain["median"], drain["min"], drain["max"]) == (3000.0, 2700.0, 3300.0)
    markdown = report.render({"meta": {}, "config": {"n": 100, "repeats": 3, "pickup_jobs": 300}, "runs": runs})
    assert "3,000 (2,700–3,300)" in markdown
    assert "| rq-simple | – | none | – |" in markdown  # async submit unsupported: "none"
    ratios = next(line for line in markdown.splitlines() if line.startswith("| rq-simple |") and "×" in line)
    assert "3.00×" in ratios and "10.00×" in ratios  # drain 3000/1000, pickup p50 5.0/0.5
    assert "| drain, 1 process ≥ 3× fastest peer (start→last) | 3.00× the fastest peer (rq-simple" in markdown
    assert "| pickup p50 < 1 ms, p99 < 5 ms (1 routing key) | p50 0.50 ms, p99 2.00 ms | met |" in markdown


def test_profile_summary_of_collapsed_stacks(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "run (asyncio/runners.py:190);Runner.run (asyncio/runners.py:118) 50\n"
        "Runner.run (asyncio/runners.py:118);Worker._fetch (bananas/worker/service.py:170);"
        "Broker.dequeue (bananas/redis/broker.py:36) 30\n"
        "Runner.run (asyncio/runners.py:118);Processor.process (bananas/worker/processor.py:80);"
        "Job.from_record (bananas/core/job.py:120) 20\n"
    )
    stats = profile_worker.summarize_stacks(profile_worker.parse_raw(raw))
    assert stats["samples"] == 100
    assert stats["by_area"] == {"asyncio / uvloop": 0.5, "bananas.redis": 0.3, "bananas.core": 0.2}
    assert stats["inclusive"]["fetching (dequeue, MGET, task creation)"] == 0.3
    assert stats["inclusive"]["Job.from_record (parse the record)"] == 0.2


def test_durability_benchmark_runs():
    """benchmarks/durability.py (cost of BANANAS_WAIT_REPLICAS) on a master + replica, tiny N."""
    proc = _run(["benchmarks.durability", "--n", "200"], timeout=120)
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [row["wait_replicas"] for row in rows] == [0, 1]
    for row in rows:
        assert all(row[k] > 0 for k in ("submit_us", "submit_many_us_per_job", "drain_us_per_job")), row


@pytest.mark.timeout(120)
def test_many_keys_benchmark_runs() -> None:
    proc = _run(["benchmarks.many_keys", "--keys", "200", "--idle", "0.5", "--jobs", "5"], timeout=100)
    assert "routing keys 200: idle CPU" in proc.stdout and "pickup p50" in proc.stdout, proc.stdout


@pytest.mark.timeout(120)
def test_submit_cost_times_every_part() -> None:
    # benchmarks/instructions.py has no smoke test: under callgrind even 300 jobs take ~26 s.
    proc = _run(["benchmarks.submit_cost", "--calls", "50", "--repeats", "1"], timeout=100)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    parts = result["us"]
    expected = {"submit_job", "round_trip", "core_submit", "route", "job_id", "format_time", "validate", "build"}
    assert expected | {"record", "call", "tracing", "python", "bulk_jobs_per_s", "bulk_python_us_per_job"} <= set(parts)
    assert all(parts[name] > 0 for name in expected | {"bulk_jobs_per_s"}), parts


def test_pickup_path_times_every_step() -> None:
    """benchmarks/pickup_path.py, 30 jobs (the first 20 a warm-up): every step of the
    pick-up measured."""
    proc = _run(["benchmarks.pickup_path", "--jobs", "30", "--gap", "0.01"], timeout=100)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    steps = result["steps"]
    assert result["measured"] == 10
    assert len(steps) == 9 and "total" in steps
    assert all(step["p50_ms"] >= 0 for step in steps.values()), steps
    assert steps["total"]["p50_ms"] > 0


@pytest.mark.timeout(150)
def test_cluster_benchmark_runs() -> None:
    """benchmarks/cluster.py (standalone vs a 3-master cluster), tiny N: every figure measured."""
    proc = _run(["benchmarks.cluster", "--n", "300", "--pickup-jobs", "5", "--repeats", "1"], timeout=130)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["masters_of_keys"] == [0, 1, 2, 0, 1]
    for system, nodes in (("standalone", 1), ("cluster", 3)):
        row = result[system]
        assert row["drain_rate"] > 0 and row["submit_rate"] > 0 and 0 < row["pickup_ms_p50"] <= row["pickup_ms_p99"]
        assert len(row["drain_cpu_us_per_job"]) == nodes and len(row["submit_cpu_us_per_job"]) == nodes
    assert result["ratio"]["drain_rate"] > 0
    assert "cluster / standalone: drain" in proc.stdout
