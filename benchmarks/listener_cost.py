"""Cost of the job events on the hot path: drain rate with one no-op listener vs none.

    python -m benchmarks.listener_cost [--n 20000] [--repeats 3] [--processes 1]

Each run queues N jobs on a fresh embedded server and times one worker draining them
(the ``drain`` figure of ``systems/bananas.py``, handler ``noop``, logs at WARNING so the
job-log listener is off); runs alternate between ``none`` and ``noop``
(``BENCH_BANANAS_LISTENER``). Prints the medians and their ratio and writes
``results/listener-cost.json``. Target (issue 10): noop within 5% of none.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bananas.embedded import EmbeddedServer

HERE = Path(__file__).resolve().parent
VARIANTS = ("none", "noop")


def one_run(variant: str, n: int, processes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bananas-bench-") as data:
        server = EmbeddedServer(Path(data))
        server.start()
        try:
            done = subprocess.run(
                [sys.executable, str(HERE / "systems" / "bananas.py"), "drain",
                 "--redis-url", server.url, "--n", str(n), "--processes", str(processes)],
                env={**os.environ, "BENCH_BANANAS_LISTENER": variant},
                capture_output=True, text=True, timeout=120 + n / 100,
            )  # fmt: skip
        finally:
            server.stop()
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("error"):
        raise SystemExit(f"{variant}: {result['error']}\n{done.stderr[-2000:]}")
    return result


def per_job_event_cost(iterations: int = 100_000) -> float:
    """Microseconds the events of one job cost in-process with a no-op listener: two
    events (started, succeeded), each built from the job and fanned out."""
    from datetime import UTC, datetime

    from bananas.core.job import new_job
    from bananas.events import EventKind, Listeners
    from bananas.worker.outcomes import event_of

    job = new_job("noop", {"i": 1}, "normal", "default", now=datetime.now(UTC))
    listeners = Listeners()
    listeners.add(lambda event: None)
    start = time.perf_counter()
    for _ in range(iterations):
        for kind in (EventKind.STARTED, EventKind.SUCCEEDED):
            if listeners.wants(kind):
                listeners.emit(event_of(kind, job, "w", 1.0, True, 0.001))
    return (time.perf_counter() - start) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for repeat in range(args.repeats):
        for variant in VARIANTS if repeat % 2 == 0 else reversed(VARIANTS):
            result = one_run(variant, args.n, args.processes)
            runs[variant].append(result)
            print(f"{variant:>4}: {result['rate']:>8.0f} jobs/s (steady {result['steady_rate'] or 0:.0f})", flush=True)
    summary = {
        v: {
            "rate_median": statistics.median(r["rate"] for r in runs[v]),
            "steady_median": statistics.median(r["steady_rate"] or 0 for r in runs[v]),
            "rates": [round(r["rate"]) for r in runs[v]],
        }
        for v in VARIANTS
    }
    ratio = summary["noop"]["rate_median"] / summary["none"]["rate_median"]
    # Runs of a pair are adjacent, so the load of a shared machine hits both alike.
    paired = statistics.median(b["rate"] / a["rate"] for a, b in zip(runs["none"], runs["noop"], strict=True))
    event_us = per_job_event_cost()
    job_us = 1e6 / summary["none"]["steady_median"] * args.processes
    steady = summary["noop"]["steady_median"] / summary["none"]["steady_median"]
    report = {"n": args.n, "repeats": args.repeats, "processes": args.processes, "summary": summary,
              "noop_over_none": ratio, "steady_noop_over_none": steady, "paired_noop_over_none": paired,
              "events_us_per_job": event_us, "worker_us_per_job": job_us}  # fmt: skip
    out = HERE / "results" / "listener-cost.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"median drain: none {summary['none']['rate_median']:.0f} jobs/s, noop {summary['noop']['rate_median']:.0f}"
        f" jobs/s: noop/none = {ratio:.3f} (steady {steady:.3f}, median of paired runs {paired:.3f});"
        f" wrote {out.relative_to(HERE.parent)}"
    )
    print(
        f"in process: the events of one job cost {event_us:.2f} us with a no-op listener, "
        f"{event_us / job_us:.1%} of the worker's {job_us:.0f} us per job"
    )


if __name__ == "__main__":
    main()
