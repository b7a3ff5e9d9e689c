"""Summaries and markdown tables of benchmark results.

    python -m benchmarks.report benchmarks/results/X.json [Y.json ...] [--update-docs]

re-renders (and merges) result files of ``benchmarks.run``; ``--update-docs`` pastes the
tables into docs/PERFORMANCE.md between its ``<!-- BEGIN figures -->`` / ``<!-- END
figures -->`` markers. Given a result file of ``benchmarks.scaling`` or
``benchmarks.profile_worker``, it re-renders that one into its own section.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "PERFORMANCE.md"
BANANAS = "bananas"

#: metric -> True when higher is better
METRICS: dict[str, bool] = {
    "rate": True,
    "steady_rate": True,
    "p50_ms": False,
    "p95_ms": False,
    "p99_ms": False,
    "max_ms": False,
    "call_p50_ms": False,
    "call_p99_ms": False,
    "startup_s": False,
    "concurrent_rate": True,
}

CASE_TITLES = {
    "submit": "submit, one call at a time (sync)",
    "submit_async": "submit, one call at a time (async)",
    "bulk": "bulk submit (batches of 1,000)",
    "drain_p1": "drain, 1 process",
    "drain_p2": "drain, 2 processes",
    "pickup_rk1": "pickup, 1 routing key",
    "pickup_rk5": "pickup, 5 routing keys",
    "wait": "submit_and_wait, one at a time",
}


# -- summary ---------------------------------------------------------------------------------


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{case: {system: {"runs", "ok", "unsupported", "errors", metric: {median, min, max, values}}}}"""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        entry = out.setdefault(run["case"], {}).setdefault(
            run["system"], {"runs": 0, "ok": 0, "unsupported": False, "errors": []}
        )
        entry["runs"] += 1
        if run.get("unsupported"):
            entry["unsupported"] = True
            entry["reason"] = run.get("reason")
            continue
        if run.get("error"):
            entry["errors"].append(run["error"])
            continue
        entry["ok"] += 1
        for metric in METRICS:
            value = run.get(metric)
            if isinstance(value, int | float):
                entry.setdefault(metric, {"values": []})["values"].append(float(value))
    for systems in out.values():
        for entry in systems.values():
            for metric in METRICS:
                if metric in entry:
                    values = entry[metric]["values"]
                    entry[metric].update(median=statistics.median(values), min=min(values), max=max(values))
    return out


def stat(summary: dict[str, Any], case: str, system: str, metric: str) -> dict[str, Any] | None:
    entry = summary.get(case, {}).get(system)
    if not entry or metric not in entry:
        return None
    return entry[metric]  # type: ignore[no-any-return]


def median(summary: dict[str, Any], case: str, system: str, metric: str) -> float | None:
    s = stat(summary, case, system, metric)
    return None if s is None else float(s["median"])


# -- formatting ---------------------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def cell(summary: dict[str, Any], case: str, system: str, metric: str, fmt: Callable[[float], str]) -> str:
    entry = summary.get(case, {}).get(system)
    if entry is None:
        return "–"
    if entry.get("unsupported"):
        return "none"
    s = entry.get(metric)
    if s is None:
        return "error" if entry.get("errors") else "–"
    text = fmt(s["median"])
    if len(s["values"]) > 1:
        text += f" ({fmt(s['min'])}–{fmt(s['max'])})"
    if entry.get("errors"):
        text += f" [{len(entry['errors'])} failed]"
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def systems_in(data: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for run in data["runs"]:
        if run["system"] not in seen:
            seen.append(run["system"])
    return sorted(seen, key=lambda s: (s != BANANAS, s))


def ratio(b: float | None, p: float | None, higher_better: bool) -> str:
    if b is None or p is None or b <= 0 or p <= 0:
        return "–"
    return f"{(b / p) if higher_better else (p / b):.2f}×"


# -- the report ------------------------------------------------------------------------------


def render_machine(meta: dict[str, Any], config: dict[str, Any]) -> str:
    interp = meta.get("interpreters", {})
    lines = [
        f"- Machine: {meta.get('cores')} cores, {meta.get('cpu')}, {meta.get('memory_gib')} GiB, {meta.get('os')}; "
        f"load average {meta.get('loadavg_start')} at start, {meta.get('loadavg_end')} at end (shared machine)",
    ]
    srv = meta.get("server") or {}
    if srv:
        lines.append(f"- Server: {srv.get('name')} {srv.get('version')} (embedded, loopback, fresh and empty per run)")
    for role, info in interp.items():
        pk = ", ".join(f"{k} {v}" for k, v in sorted(info.get("packages", {}).items()))
        lines.append(f"- Python ({role}): {info.get('implementation', '')} {info.get('python', '?')}; {pk}")
    src = meta.get("source") or {}
    dirty = " + uncommitted changes in src/" if src.get("dirty") else ""
    snap = f" (src/ of {src.get('ref')})" if src.get("snapshot") else ""
    lines.append(f"- Bananas source: commit {src.get('commit')}{snap}{dirty}")
    lines.append(
        f"- N = {config.get('n'):,} jobs per run, {config.get('repeats')} run(s) per cell, "
        f"pickup {config.get('pickup_jobs')} jobs 20 ms apart; run {meta.get('started')} – {meta.get('finished')}"
    )
    if meta.get("note"):
        lines.append(f"- Note: {meta['note']}")
    return "\n".join(lines)


def render(data: dict[str, Any]) -> str:
    summary = data.get("summary") or summarize(data["runs"])
    systems = systems_in(data)
    peers = [s for s in systems if s != BANANAS]
    parts: list[str] = []
    parts.append("#### Where and how\n\n" + render_machine(data.get("meta", {}), data.get("config", {})))
    parts.append("Cells: median over the runs, (min–max) in brackets. `none`: the system has no such API.")

    # producers
    rows = [[s] + [cell(summary, c, s, "rate", fmt_rate) for c in ("submit", "submit_async", "bulk")] for s in systems]
    parts.append("#### Submit throughput (jobs/s)\n\n" + table(["system", "sync, one call at a time",
                 "async, one call at a time", "bulk, batches of 1,000"], rows))  # fmt: skip

    # consumers
    rows = [
        [s]
        + [cell(summary, c, s, m, fmt_rate) for c in ("drain_p1", "drain_p2") for m in ("rate", "steady_rate")]
        for s in systems
    ]
    parts.append(
        "#### Drain throughput (jobs/s)\n\nStart→last: N jobs queued, time from starting the worker command to the "
        "last completion (start-up included). Steady: rate between 10% and 90% of the jobs done.\n\n"
        + table(["system", "1 process, start→last", "1 process, steady", "2 processes, start→last",
                 "2 processes, steady"], rows)
    )

    # pickup
    rows = []
    for s in systems:
        for case, keys in (("pickup_rk1", "1"), ("pickup_rk5", "5")):
            if s not in summary.get(case, {}):
                continue
            metrics = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
            rows.append([s, keys] + [cell(summary, case, s, m, fmt_ms) for m in metrics])
    parts.append(
        "#### Pickup latency of an idle worker (ms, submit → handler start)\n\n"
        + table(["system", "routing keys", "p50", "p95", "p99", "max"], rows)
    )

    # submit_and_wait
    if "wait" in summary:
        rows = [
            [s, cell(summary, "wait", s, "rate", fmt_rate), cell(summary, "wait", s, "call_p50_ms", fmt_ms),
             cell(summary, "wait", s, "call_p99_ms", fmt_ms), cell(summary, "wait", s, "concurrent_rate", fmt_rate)]
            for s in systems if s in summary["wait"]
        ]  # fmt: skip
        parts.append(
            "#### submit_and_wait end to end (1 worker process)\n\nOne call at a time with the sync `Client` "
            "(up to 5,000 calls), and N calls through one `AsyncClient` with 64 in flight.\n\n"
            + table(["system", "one at a time, jobs/s", "call p50 ms", "call p99 ms", "64 in flight, jobs/s"], rows)
        )

    # ratios
    if peers and BANANAS in systems:
        cols: list[tuple[str, str, str, bool]] = [
            ("submit", "submit", "rate", True),
            ("submit async", "submit_async", "rate", True),
            ("bulk", "bulk", "rate", True),
            ("drain 1p", "drain_p1", "rate", True),
            ("drain 1p steady", "drain_p1", "steady_rate", True),
            ("drain 2p", "drain_p2", "rate", True),
            ("drain 2p steady", "drain_p2", "steady_rate", True),
            ("pickup p50", "pickup_rk1", "p50_ms", False),
            ("pickup p99", "pickup_rk1", "p99_ms", False),
        ]
        rows = []
        for p in peers:
            row = [p]
            for _, case, metric, higher in cols:
                row.append(ratio(median(summary, case, BANANAS, metric), median(summary, case, p, metric), higher))
            rows.append(row)
        parts.append(
            "#### Bananas relative to each peer (medians; above 1× means Bananas is ahead)\n\n"
            "Throughput: Bananas ÷ peer. Latency: peer ÷ Bananas.\n\n" + table(["peer"] + [c[0] for c in cols], rows)
        )
    parts.append("#### Targets (issue 5)\n\n" + render_targets(summary, peers))
    parts.append("#### Goals (issue 15)\n\n" + render_goals(summary, peers))
    return "\n\n".join(parts) + "\n"


def _best_peer(
    summary: dict[str, Any], case: str, metric: str, peers: Sequence[str], *, lowest: bool = False
) -> tuple[str, float] | None:
    """The peer with the highest median (the lowest with ``lowest``: latencies)."""
    found = [(p, median(summary, case, p, metric)) for p in peers]
    valid = [(p, v) for p, v in found if v is not None]
    if not valid:
        return None
    return (min if lowest else max)(valid, key=lambda pv: pv[1])


def _vs_peers(
    summary: dict[str, Any], peers: Sequence[str], label: str, case: str, metric: str, factor: float
) -> list[str]:
    """One row: Bananas' median of ``metric`` over the best peer's, met at ``factor``."""
    ours = median(summary, case, BANANAS, metric)
    best = _best_peer(summary, case, metric, peers)
    if ours is None:
        return [label, "not measured", "–"]
    if best is None:
        return [label, f"Bananas {fmt_rate(ours)}/s; no peer results in this run", "pending peers"]
    name, value = best
    got = ours / value
    return [label, f"{got:.2f}× the fastest peer ({name}, {fmt_rate(value)}/s)", "met" if got >= factor else "not met"]


def _drain_rows(
    summary: dict[str, Any], peers: Sequence[str], factor_1p: float, factor_2p: float, the: str = ""
) -> list[list[str]]:
    """The four drain rows (1 and 2 processes, start→last and steady) against the fastest peer."""
    rows: list[list[str]] = []
    for processes, case, factor in (("1 process", "drain_p1", factor_1p), ("2 processes", "drain_p2", factor_2p)):
        for metric, kind in (("rate", "start→last"), ("steady_rate", "steady")):
            label = f"drain, {processes} ≥ {factor:g}× {the}fastest peer ({kind})"
            rows.append(_vs_peers(summary, peers, label, case, metric, factor))
    return rows


def _threshold(label: str, value: float | None, text: str, met: bool) -> list[str]:
    return [label, "–", "–"] if value is None else [label, text, "met" if met else "not met"]


def render_targets(summary: dict[str, Any], peers: Sequence[str]) -> str:
    rows = _drain_rows(summary, peers, 3.0, 3.0)
    rows.append(_vs_peers(summary, peers, "single-call submit ≥ 1.5× fastest peer", "submit", "rate", 1.5))
    bulk = median(summary, "bulk", BANANAS, "rate")
    rows.append(_threshold("bulk submit ≥ 100,000 jobs/s", bulk, f"{fmt_rate(bulk or 0)}/s", (bulk or 0) >= 100_000))
    for case, keys in (("pickup_rk1", "1 routing key"), ("pickup_rk5", "5 routing keys")):
        p50 = median(summary, case, BANANAS, "p50_ms")
        p99 = median(summary, case, BANANAS, "p99_ms")
        if p50 is None or p99 is None:
            rows.append([f"pickup p50 < 1 ms, p99 < 5 ms ({keys})", "not measured", "–"])
            continue
        status = "met" if p50 < 1 and p99 < 5 else "not met"
        rows.append([f"pickup p50 < 1 ms, p99 < 5 ms ({keys})", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", status])
    return table(["target", "measured", "status"], rows, align="lll")


def render_goals(summary: dict[str, Any], peers: Sequence[str]) -> str:
    """Issue 15's goals, each as a ratio to the best peer of this same run where it is one."""
    rows = _drain_rows(summary, peers, 3.0, 2.5, the="the ")
    # The peers have no routing keys and run the pick-up on one list: both rows compare with that.
    best = _best_peer(summary, "pickup_rk1", "p50_ms", peers, lowest=True)
    for case, keys in (("pickup_rk1", "1 routing key"), ("pickup_rk5", "5 routing keys")):
        label = f"pickup p50 < 1 ms and p99 < 3 ms, p50 ahead of the best peer ({keys})"
        p50 = median(summary, case, BANANAS, "p50_ms")
        p99 = median(summary, case, BANANAS, "p99_ms")
        if p50 is None or p99 is None:
            rows.append([label, "not measured", "–"])
            continue
        versus = "" if best is None else f"; best peer {best[0]} p50 {best[1]:.2f} ms"
        met = p50 < 1 and p99 < 3 and (best is None or p50 < best[1])
        rows.append([label, f"p50 {p50:.2f} ms, p99 {p99:.2f} ms{versus}", "met" if met else "not met"])
    rows.append(_vs_peers(summary, peers, "sync single submit ≥ 1.5× the fastest peer", "submit", "rate", 1.5))
    bulk = median(summary, "bulk", BANANAS, "rate")
    label = "bulk submit ≥ 150,000 jobs/s (batches of 1,000)"
    rows.append(_threshold(label, bulk, f"{fmt_rate(bulk or 0)}/s", (bulk or 0) >= 150_000))
    wait = median(summary, "wait", BANANAS, "call_p50_ms")
    label = "submit-and-wait p50 < 2 ms (idle worker, sync client)"
    rows.append(_threshold(label, wait, f"{wait or 0:.2f} ms", wait is not None and wait < 2))
    return table(["goal", "measured (medians)", "status"], rows, align="lll")


# -- docs ---------------------------------------------------------------------------------------


def update_docs(section: str, markdown: str, path: Path = DOCS) -> None:
    """Replace the text between ``<!-- BEGIN section -->`` and ``<!-- END section -->``."""
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path} has no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{markdown.strip()}\n{end}{tail}")
    print(f"updated the {section} section of {path}", file=sys.stderr)


def merge(files: Sequence[Path]) -> dict[str, Any]:
    datas = [json.loads(f.read_text()) for f in files]
    if len(datas) == 1:
        return datas[0]  # type: ignore[no-any-return]
    merged = dict(datas[0])
    merged["runs"] = [run for d in datas for run in d["runs"]]
    merged["summary"] = summarize(merged["runs"])
    note = merged["meta"].get("note") or ""
    merged["meta"] = dict(merged["meta"], note=(note + " " if note else "") + f"merged from {len(files)} result files")
    return merged


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--update-docs", action="store_true")
    args = p.parse_args(argv)
    first = json.loads(args.files[0].read_text())
    if "runs" in first:
        section, markdown = "figures", render(merge(args.files))
    elif "result" in first:  # a profile_worker result
        from benchmarks import profile_worker

        section, markdown = "profile", profile_worker.render(first)
    else:  # a scaling result
        from benchmarks import scaling

        section, markdown = "scaling", scaling.render(first)
    print(markdown)
    if args.update_docs:
        update_docs(section, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
