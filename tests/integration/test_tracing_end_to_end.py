"""One trace from the code that submits a job to the worker that runs it (OpenTelemetry
SDK in a subprocess, which owns its global tracer provider)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is in the dev extra")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bananas import Client, Registry, Worker, WorkerSettings
    from bananas.core.retry import RetryPolicy
    from bananas.tracing import TracingListener, tracing_configured

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert tracing_configured()
    url = sys.argv[1]

    registry = Registry()
    attempts = []

    @registry.handler("flaky")
    def flaky(job):
        attempts.append(job.attempts)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return "ok"

    with trace.get_tracer("web").start_as_current_span("POST /signup"):
        with Client(url) as client:
            job_id = client.submit_job("flaky", {"user": 1}, max_retries=2)
            record = client.get_job(job_id).extra

    async def main():
        settings = WorkerSettings(redis_url=url, retry_policy=RetryPolicy(base=0.05, factor=1.0, cap=0.05, jitter=0.0))
        worker = Worker(registry, settings, listeners=[TracingListener()])
        task = asyncio.create_task(worker.run())
        for _ in range(200):
            if len(attempts) == 2 and len([s for s in exporter.get_finished_spans() if s.name == "process flaky"]) == 2:
                break
            await asyncio.sleep(0.05)
        worker.stop()
        await task

    asyncio.run(main())
    spans = [
        {
            "name": s.name, "kind": s.kind.name, "trace": s.context.trace_id, "span": s.context.span_id,
            "parent": s.parent.span_id if s.parent else None, "status": s.status.status_code.name,
            "attributes": dict(s.attributes),
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"traceparent": record.get("traceparent"), "spans": spans}))
    """
)


def test_one_trace_from_submit_to_each_attempt(tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    script = tmp_path / "traced.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), redis_url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    spans = {s["name"]: s for s in found["spans"] if s["name"] != "process flaky"}
    request, send = spans["POST /signup"], spans["send flaky"]
    attempts = [s for s in found["spans"] if s["name"] == "process flaky"]
    assert send["kind"] == "PRODUCER" and send["parent"] == request["span"]
    # W3C trace context: version, trace id, the producer span's id, flags (sampled).
    assert found["traceparent"].startswith(f"00-{request['trace']:032x}-{send['span']:016x}-")
    assert len(attempts) == 2
    for attempt in attempts:
        assert attempt["kind"] == "CONSUMER"
        assert attempt["trace"] == request["trace"], "one trace from the request to the worker"
        assert attempt["parent"] == send["span"]
    assert [a["attributes"]["bananas.job.outcome"] for a in attempts] == ["retrying", "succeeded"]
    assert [a["status"] for a in attempts] == ["ERROR", "OK"]
