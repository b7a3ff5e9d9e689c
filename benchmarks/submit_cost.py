"""Where the sync client's per-call submit cost goes, part by part (issue 15).

    python -m benchmarks.submit_cost [--calls 3000] [--repeats 5]

Against a fresh embedded server, times (microseconds per call, median of ``--repeats``
rounds of ``--calls`` calls, rounds interleaved so machine load hits every part alike):

- ``submit_job``: ``Client.submit_job("noop", {"i": i})``, the whole call;
- ``round_trip``: the same calls built beforehand (fresh ids, so the server does the
  whole write and the wake-up), only sent with the client's runner: the floor (socket,
  server, reply);
- ``python``: ``submit_job`` minus ``round_trip``, the client's own per-call cost;
- the Python parts, each alone: ``route`` (route table lookup), ``job_id`` (UUID),
  ``format_time``, ``validate`` (name, priority, routing key, retries, payload),
  ``build`` (job construction with validation), ``record`` (record encoding),
  ``call`` (the script call's keys and arguments), ``tracing`` (the producer span hook),
  ``core_submit`` (all of the Python side but the send);
- bulk: ``submit_many`` in batches of 1,000 (``bulk_us_per_job``, ``bulk_jobs_per_s``) and
  its Python side alone (``bulk_python_us_per_job``).

Prints a table and one JSON line; ``--out FILE`` also writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bananas import Client
from bananas.core import codec
from bananas.core.clock import format_time
from bananas.core.job import new_job_id, validate_new_job
from bananas.embedded import EmbeddedServer
from bananas.redis import calls, keys
from bananas.tracing import producer_span


def _timed(fn: Callable[[int], object], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def measure(url: str, n: int, repeats: int, bulk_batches: int = 10) -> dict[str, float]:
    with Client(url) as client:
        core = client._core
        runner = client._runner
        now = datetime.now(UTC)
        prebuilt = [core.submit("noop", {"i": i})[1] for i in range(n + 200)]
        job = core.build("noop", {"i": 0}, "normal", "default", 3, None)

        def tracing(_: int) -> None:
            with producer_span("noop") as span:
                span.submitted(["x"])

        def validate(i: int) -> None:
            validate_new_job("noop", "normal", "default", 3, None)
            codec.check_payload({"i": i}, max_bytes=codec.DEFAULT_MAX_PAYLOAD_BYTES)

        parts: dict[str, Callable[[int], object]] = {
            "submit_job": lambda i: client.submit_job("noop", {"i": i}),
            "round_trip": lambda i: runner.run(prebuilt[i]),
            "core_submit": lambda i: core.submit("noop", {"i": i}),
            "route": lambda i: core.route("noop", {"i": i}, None, None),
            "job_id": lambda i: new_job_id(),
            "format_time": lambda i: format_time(now),
            "validate": validate,
            "build": lambda i: core.build("noop", {"i": i}, "normal", "default", 3, None),
            "record": lambda i: job.to_record(),
            "call": lambda i: calls.submit(job, b"{}", layout=keys.STANDALONE),
            "tracing": tracing,
        }
        for fn in parts.values():  # warm-up
            _timed(fn, 200)
        samples: dict[str, list[float]] = {name: [] for name in parts}
        for _ in range(repeats):
            prebuilt[:] = [core.submit("noop", {"i": i})[1] for i in range(n)]
            for name, fn in parts.items():
                samples[name].append(_timed(fn, n))
        # Bulk: submit_many in batches of 1,000 (the whole call, and the Python side alone).
        payloads = [{"i": i} for i in range(1000)]
        client.submit_many("noop", payloads)
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(bulk_batches):
                client.submit_many("noop", payloads)
            samples.setdefault("bulk_us_per_job", []).append((time.perf_counter() - start) / bulk_batches / 1000 * 1e6)
            start = time.perf_counter()
            for _ in range(bulk_batches):
                core.submit_many("noop", payloads)
            samples.setdefault("bulk_python_us_per_job", []).append(
                (time.perf_counter() - start) / bulk_batches / 1000 * 1e6
            )
    medians = {name: statistics.median(values) for name, values in samples.items()}
    medians["bulk_jobs_per_s"] = 1e6 / medians["bulk_us_per_job"]
    medians["python"] = medians["submit_job"] - medians["round_trip"]
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bananas-submit-") as tmp:
        server = EmbeddedServer(Path(tmp))
        server.start()
        try:
            medians = measure(server.url, args.calls, args.repeats)
        finally:
            server.stop()
    whole = medians["submit_job"]
    for name, value in medians.items():
        share = f"  ({value / whole:6.1%} of submit_job)" if not name.startswith("bulk") else ""
        print(f"{name:>22}: {value:10.2f}{share}", file=sys.stderr)
    result: dict[str, Any] = {
        "calls": args.calls,
        "repeats": args.repeats,
        "us": {k: round(v, 3) for k, v in medians.items()},
    }
    line = json.dumps(result)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
