"""Run the benchmark suite: every system's adapter, every figure, several times, each run
on a fresh embedded server on a free loopback port.

    python -m benchmarks.run                       # Bananas + peers found, N=20,000, 3 repeats
    python -m benchmarks.run --peer-python benchmarks/.venv-peers/bin/python
    python -m benchmarks.run --smoke               # N=500, 1 repeat, Bananas only (CI)
    python -m benchmarks.run --systems bananas --cases drain_p1,drain_p2 --n 5000

Results go to ``benchmarks/results/<stamp>.json`` and ``.md`` (``--out`` elsewhere);
``--update-docs`` also pastes the tables into docs/PERFORMANCE.md. See that file for the
method.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/run.py``
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bananas.embedded import EmbeddedServer
from benchmarks import machine, report

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS_DIR = ROOT / "benchmarks" / "systems"
RESULTS_DIR = ROOT / "benchmarks" / "results"
BANANAS = "bananas"


@dataclass(frozen=True)
class Case:
    """One figure with its parameters: a column of the result tables."""

    name: str
    figure: str
    args: tuple[str, ...] = ()
    bananas_only: bool = False


CASES: tuple[Case, ...] = (
    Case("submit", "submit"),
    Case("submit_async", "submit_async"),
    Case("bulk", "bulk"),  # batches of 1,000: every adapter's default
    Case("drain_p1", "drain", ("--processes", "1")),
    Case("drain_p2", "drain", ("--processes", "2")),
    Case("pickup_rk1", "pickup"),
    Case("pickup_rk5", "pickup", ("--routing-keys", "5"), bananas_only=True),
    Case("wait", "wait", bananas_only=True),
)
CASE_BY_NAME = {c.name: c for c in CASES}


@dataclass
class Plan:
    n: int
    repeats: int
    systems: list[str]
    targets: dict[str, tuple[str, str | None]]
    cases: list[Case]
    pythons: dict[str, str]
    pickup_jobs: int
    timeout: float
    runs: list[dict[str, Any]] = field(default_factory=list)


def adapter_files() -> list[str]:
    names = sorted(p.stem for p in SYSTEMS_DIR.glob("*.py") if not p.stem.startswith("_"))
    return [BANANAS] + [n for n in names if n != BANANAS] if BANANAS in names else names


def variants_of(python: str, adapter: str) -> list[str]:
    """An adapter may offer ``--variant {a,b}`` (e.g. RQ's SimpleWorker and forking
    Worker); each variant is benchmarked as its own system ``adapter-variant``."""
    try:
        out = subprocess.run(
            [python, str(SYSTEMS_DIR / f"{adapter}.py"), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    m = re.search(r"--variant \{([^}]*)\}", out)
    return [v.strip() for v in m.group(1).split(",")] if m else []


def expand_systems(adapters: list[str], peer_python: str | None) -> dict[str, tuple[str, str | None]]:
    """system name -> (adapter file stem, variant or None)."""
    systems: dict[str, tuple[str, str | None]] = {}
    for adapter in adapters:
        variants = variants_of(peer_python, adapter) if adapter != BANANAS and peer_python else []
        if len(variants) > 1:
            for v in variants:
                systems[f"{adapter}-{v}"] = (adapter, v)
        else:
            systems[adapter] = (adapter, None)
    return systems


def python_for(system: str, pythons: dict[str, str]) -> str | None:
    return pythons["bananas"] if system == BANANAS else pythons.get("peers")


def adapter_timeout(n: int) -> float:
    return 60.0 + n / 40.0


# -- one run -----------------------------------------------------------------------------------


def kill_tagged(run_id: str) -> int:
    """SIGKILL every process whose environment carries ``BENCH_RUN_ID=run_id``."""
    needle = f"BENCH_RUN_ID={run_id}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def run_adapter(
    python: str,
    system: str,
    target: tuple[str, str | None],
    case: Case,
    url: str,
    n: int,
    pickup_jobs: int,
    timeout: float,
    log_path: Path,
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex
    adapter, variant = target
    argv = [
        python, str(SYSTEMS_DIR / f"{adapter}.py"), case.figure,
        "--redis-url", url, "--n", str(n), "--timeout", str(timeout), *case.args,
    ]  # fmt: skip
    if case.figure == "pickup":
        argv += ["--pickup-jobs", str(pickup_jobs)]
    if variant:
        argv += ["--variant", variant]
    env = dict(os.environ)
    env["BENCH_RUN_ID"] = run_id
    env["PYTHONUNBUFFERED"] = "1"
    # Only the adapter's own choices apply: no stray configuration from the caller.
    for key in [k for k in env if k.startswith(("WORKER_", "JOB_", "REDIS_URL"))]:
        del env[key]
    started = time.monotonic()
    with log_path.open("wb") as log:
        log.write((" ".join(argv) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True,
        )  # fmt: skip
        try:
            stdout, _ = proc.communicate(timeout=timeout + 60)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                stdout, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                stdout, _ = proc.communicate()
    leaked = kill_tagged(run_id)
    wall = time.monotonic() - started
    lines = [ln for ln in stdout.decode(errors="replace").splitlines() if ln.strip()]
    result: dict[str, Any]
    try:
        result = json.loads(lines[-1]) if lines else {}
        if not isinstance(result, dict):
            raise ValueError("not an object")
    except ValueError:
        tail = log_path.read_text(errors="replace")[-2000:]
        if proc.returncode == 2 and "invalid choice" in tail and repr(case.figure) in tail:
            # An adapter without this figure that did not say so in JSON (argparse refused it).
            result = {"unsupported": True, "reason": f"adapter has no {case.figure} figure"}
        else:
            result = {"error": f"no JSON result line (exit {proc.returncode}); see {log_path.name}"}
    if timed_out:
        result["error"] = f"harness timeout after {timeout + 60:.0f}s"
    if proc.returncode not in (0, None) and "error" not in result and not result.get("unsupported"):
        result["error"] = f"adapter exited with code {proc.returncode}"
    if leaked:
        result["leaked_processes_killed"] = leaked
    result.update({"system": system, "case": case.name, "figure": case.figure, "n": n, "wall_s": round(wall, 2)})
    return result


def run_once(
    plan: Plan, system: str, case: Case, workdir: Path, logs: Path, server_info: dict[str, Any]
) -> dict[str, Any]:
    python = python_for(system, plan.pythons)
    assert python is not None
    with tempfile.TemporaryDirectory(dir=workdir) as data:
        server = EmbeddedServer(data)
        server.start()
        try:
            if not server_info:
                server_info.update(machine.server(server.url))
            log_path = logs / f"{system}-{case.name}-{len(plan.runs):03d}.log"
            target = plan.targets[system]
            return run_adapter(
                python, system, target, case, server.url, plan.n, plan.pickup_jobs, plan.timeout, log_path
            )
        finally:
            server.stop()


def describe_result(res: dict[str, Any]) -> str:
    if res.get("unsupported"):
        return "unsupported"
    if res.get("error"):
        return f"ERROR {res['error']}"
    parts = []
    if res.get("rate") is not None:
        parts.append(f"{res['rate']:,.0f}/s")
    if res.get("steady_rate") is not None:
        parts.append(f"steady {res['steady_rate']:,.0f}/s")
    if res.get("p50_ms") is not None:
        parts.append(f"p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms")
    return ", ".join(parts) or "ok"


def execute(plan: Plan, logs: Path) -> dict[str, Any]:
    server_info: dict[str, Any] = {}
    total = plan.repeats * sum(
        1 for case in plan.cases for s in plan.systems if not (case.bananas_only and s != BANANAS)
    )
    done = 0
    with tempfile.TemporaryDirectory(prefix="bananas-bench-") as tmp:
        workdir = Path(tmp)
        # Interleaved (repeat > case > system) so slow drifts in machine load hit every
        # system alike rather than one system's whole series.
        for rep in range(plan.repeats):
            for case in plan.cases:
                for system in plan.systems:
                    if case.bananas_only and system != BANANAS:
                        continue
                    done += 1
                    res = run_once(plan, system, case, workdir, logs, server_info)
                    res["repeat"] = rep
                    plan.runs.append(res)
                    print(
                        f"[{done}/{total}] {system:>14} {case.name:<13} rep {rep + 1}: {describe_result(res)}",
                        file=sys.stderr,
                        flush=True,
                    )
    return server_info


# -- command line -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="jobs per run (default 20,000)")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure and system (default 3)")
    p.add_argument("--systems", default=None, help="comma list (default: bananas and every peer adapter found)")
    p.add_argument("--cases", default=None, help=f"comma list of {', '.join(CASE_BY_NAME)} (default all)")
    p.add_argument("--peer-python", default=os.environ.get("BENCH_PEER_PYTHON"),
                   help="interpreter with the peers installed ($BENCH_PEER_PYTHON)")  # fmt: skip
    p.add_argument("--bananas-python", default=sys.executable, help="interpreter with Bananas (default: this one)")
    p.add_argument("--pickup-jobs", type=int, default=300, help="jobs in the pickup figure (default 300)")
    p.add_argument("--smoke", action="store_true", help="N=500, 1 repeat, Bananas only, short pickup")
    p.add_argument("--out", default=None, help=f"folder for the results (default {RESULTS_DIR.relative_to(ROOT)})")
    p.add_argument("--label", default=None, help="name of the result files (default: a time stamp)")
    p.add_argument("--update-docs", action="store_true", help="paste the tables into docs/PERFORMANCE.md")
    p.add_argument("--note", default=None, help="free text stored with the results (e.g. 'preliminary')")
    p.add_argument("--bananas-ref", default=None,
                   help="benchmark Bananas' src/ as of this git ref (e.g. HEAD), not the working tree")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.n, args.repeats, args.pickup_jobs = 500, 1, 30
        args.systems = args.systems or BANANAS
    if args.bananas_ref:
        machine.reexec_on_snapshot(args.bananas_ref, "benchmarks.run", argv)
    adapters = adapter_files()
    wanted = [s.strip() for s in args.systems.split(",")] if args.systems else adapters
    pythons = {"bananas": args.bananas_python}
    if args.peer_python:
        pythons["peers"] = args.peer_python
    elif any(s != BANANAS for s in wanted):
        if args.systems:
            print("peer systems need --peer-python (or $BENCH_PEER_PYTHON)", file=sys.stderr)
            return 2
        print(f"no --peer-python: skipping peers {[a for a in adapters if a != BANANAS]}", file=sys.stderr)
        wanted = [s for s in wanted if s == BANANAS]
    targets = expand_systems(adapters, pythons.get("peers"))
    systems: list[str] = []
    for name in wanted:
        # A bare adapter name selects all its variants ("rq" -> rq-simple, rq-fork).
        found = [s for s, (a, _) in targets.items() if s == name or a == name]
        if not found:
            print(f"unknown system {name!r}; available: {', '.join(targets)}", file=sys.stderr)
            return 2
        systems += [s for s in found if s not in systems]
    try:
        cases = [CASE_BY_NAME[c.strip()] for c in args.cases.split(",")] if args.cases else list(CASES)
    except KeyError as exc:
        print(f"unknown case {exc}; available: {', '.join(CASE_BY_NAME)}", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    label = args.label or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + ("-smoke" if args.smoke else "")
    logs = out_dir / f"{label}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    plan = Plan(args.n, args.repeats, systems, targets, cases, pythons, args.pickup_jobs, adapter_timeout(args.n))
    meta = machine.describe(pythons)
    meta.update({"started": datetime.now(UTC).isoformat(timespec="seconds"), "note": args.note, "smoke": args.smoke})
    print(f"benchmarks: systems {systems}, cases {[c.name for c in cases]}, N={args.n}, "
          f"{args.repeats} repeat(s); logs in {logs}", file=sys.stderr)  # fmt: skip
    meta["server"] = execute(plan, logs)
    meta["loadavg_end"] = machine.loadavg()
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    data = {
        "meta": meta,
        "config": {"n": args.n, "repeats": args.repeats, "pickup_jobs": args.pickup_jobs,
                   "systems": systems, "cases": [c.name for c in cases]},
        "runs": plan.runs,
    }  # fmt: skip
    data["summary"] = report.summarize(plan.runs)
    json_path = out_dir / f"{label}.json"
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    markdown = report.render(data)
    (out_dir / f"{label}.md").write_text(markdown)
    print(markdown)
    print(f"results: {json_path}", file=sys.stderr)
    if args.update_docs:
        report.update_docs("figures", markdown)
    failures = [r for r in plan.runs if r.get("error")]
    if failures:
        print(f"{len(failures)} run(s) failed; see the logs in {logs}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
