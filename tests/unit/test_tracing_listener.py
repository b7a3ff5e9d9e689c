"""OpenTelemetry: the producer span writes a traceparent; the listener's consumer span is
its child, so one trace runs from submit to each attempt (SDK spans kept in memory)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bananas.events import EventKind, JobEvent

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="opentelemetry-sdk is in the dev extra")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from bananas import tracing  # noqa: E402


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


def event(kind: EventKind, traceparent: str | None, **fields: object) -> JobEvent:
    base: dict[str, object] = {
        "kind": kind, "job_id": "j1", "name": "resize", "routing_key": "gpu", "priority": "high",
        "attempt": 1, "worker_id": "w", "at": 1000.0, "traceparent": traceparent,
    }  # fmt: skip
    base.update(fields)
    return JobEvent(**base)  # type: ignore[arg-type]


def test_consumer_span_is_a_child_of_the_submitted_traceparent(spans: InMemorySpanExporter) -> None:
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("web request") as request:
        carrier: dict[str, str] = {}
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        TraceContextTextMapPropagator().inject(carrier)
    traceparent = carrier["traceparent"]
    listener = tracing.TracingListener(tracer_provider=provider)
    listener(event(EventKind.STARTED, traceparent))
    listener(event(EventKind.RETRYING, traceparent, at=1000.5, duration_s=0.5, error="ValueError: boom"))
    listener(event(EventKind.STARTED, traceparent, attempt=2, at=1002.0))
    listener(event(EventKind.SUCCEEDED, traceparent, attempt=2, at=1002.25, duration_s=0.25))
    attempts = [s for s in spans.get_finished_spans() if s.name == "process resize"]
    assert len(attempts) == 2
    trace_id = request.get_span_context().trace_id
    for span in attempts:
        assert span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
        assert span.kind is trace.SpanKind.CONSUMER
        assert span.attributes["messaging.destination.name"] == "gpu"
    first, second = attempts
    assert first.status.status_code is trace.StatusCode.ERROR
    assert first.attributes["bananas.job.outcome"] == "retrying"
    assert (first.end_time - first.start_time) == 500_000_000
    assert second.status.status_code is trace.StatusCode.OK
    assert second.attributes["bananas.job.attempt"] == 2


def test_a_job_without_traceparent_starts_its_own_trace(spans: InMemorySpanExporter) -> None:
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    listener = tracing.TracingListener(tracer_provider=provider)
    listener(event(EventKind.EXPIRED, None))
    listener(event(EventKind.STARTED, "not a traceparent"))
    listener(event(EventKind.DEAD, "not a traceparent", duration_s=0.1, error="boom"))
    finished = spans.get_finished_spans()
    assert [s.attributes["bananas.job.outcome"] for s in finished] == ["expired", "dead"]
    assert all(s.parent is None for s in finished)


def test_tracing_is_off_without_a_configured_provider() -> None:
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("a global tracer provider was set by another test")
    assert not tracing.tracing_configured()
    with tracing.producer_span("resize") as span:
        assert span.traceparent is None
