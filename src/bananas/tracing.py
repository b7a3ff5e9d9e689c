"""OpenTelemetry tracing of jobs, from the code that submits one to the worker that runs it.

Optional: it does something only when ``opentelemetry-api`` is installed (the ``otel``
extra) and the application configured a tracer provider (the SDK's
``trace.set_tracer_provider(...)``). Then:

* the clients open a PRODUCER span ``send <job name>`` around each submit (child of the
  caller's current span, a web request for instance) and write its W3C trace context in
  the record's ``traceparent`` field (docs/WIRE_FORMAT.md); with no provider configured
  but a span active anyway, that span's context is written;
* ``TracingListener``, a listener of the job events (``bananas worker`` adds it by
  itself), opens a CONSUMER span ``process <job name>`` for each attempt, child of that
  ``traceparent``, and ends it with the attempt's outcome; a job that expires, is
  parked or cancelled before it ran gets a short span saying so.

So one trace runs from the request that submitted a job to each attempt that ran it.
Without OpenTelemetry this module costs one failed import, once.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from bananas.core.job import TRACEPARENT
from bananas.events import EventKind, JobEvent

INSTRUMENTATION = "bananas"
#: Spans kept open at once (attempts running in this process); past it the oldest is ended.
MAX_OPEN_SPANS = 10_000


@functools.cache
def _api() -> Any | None:
    """The ``opentelemetry.trace`` module, or None when opentelemetry-api is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


@functools.cache
def _propagator() -> Any:
    """One W3C trace-context propagator (stateless), built once rather than per submit."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def tracing_configured() -> bool:
    """True when opentelemetry-api is installed and a real tracer provider is set."""
    trace = _api()
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _version() -> str:
    try:
        return importlib.metadata.version("bananas")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None (no OpenTelemetry, no valid span)."""
    trace = _api()
    if trace is None:
        return None
    # No valid current span (the usual case without tracing): the propagator would write
    # nothing; skip building the carrier.
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return carrier.get(TRACEPARENT)


@dataclass(slots=True)
class ProducerSpan:
    """What ``producer_span`` yields: the ``traceparent`` to write into the record(s)."""

    traceparent: str | None = None
    span: Any = None

    def submitted(self, job_ids: list[str], routing_key: str | None = None) -> None:
        if self.span is None:
            return
        if len(job_ids) == 1:
            self.span.set_attribute("messaging.message.id", job_ids[0])
        else:
            self.span.set_attribute("messaging.batch.message_count", len(job_ids))
        if routing_key is not None:
            self.span.set_attribute("messaging.destination.name", routing_key)


def producer_span(job_name: str) -> AbstractContextManager[ProducerSpan]:
    """Around one submit (or one ``submit_many``): a PRODUCER span when tracing is
    configured; the traceparent of whatever span is current otherwise (maybe none).

    Without a configured tracer (the usual case) this is a plain ``nullcontext``: no
    generator-based context manager on every submit."""
    trace = _api()
    if trace is None:
        return nullcontext(ProducerSpan())
    if not tracing_configured():
        return nullcontext(ProducerSpan(current_traceparent()))
    return _traced_span(trace, job_name)


@contextmanager
def _traced_span(trace: Any, job_name: str) -> Iterator[ProducerSpan]:
    tracer = trace.get_tracer(INSTRUMENTATION, _version())
    attributes = {"messaging.system": "bananas", "messaging.operation.type": "send", "bananas.job.name": job_name}
    with tracer.start_as_current_span(f"send {job_name}", kind=trace.SpanKind.PRODUCER, attributes=attributes) as span:
        yield ProducerSpan(current_traceparent(), span)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class TracingListener:
    """Job events to CONSUMER spans, one per attempt, children of the job's ``traceparent``.

    Raises ``RuntimeError`` when opentelemetry-api is not installed."""

    def __init__(self, tracer_provider: Any = None) -> None:
        trace = _api()
        if trace is None:
            raise RuntimeError("TracingListener needs opentelemetry-api (pip install 'bananas[otel]')")
        self._trace = trace
        self._tracer = trace.get_tracer(INSTRUMENTATION, _version(), tracer_provider=tracer_provider)
        self._propagator = _propagator()
        self._open: dict[str, Any] = {}

    def __call__(self, event: JobEvent) -> None:
        if event.kind is EventKind.STARTED:
            self._close(self._open.pop(event.job_id, None), event, interrupted=True)
            if len(self._open) >= MAX_OPEN_SPANS:
                oldest = next(iter(self._open))
                self._close(self._open.pop(oldest), event, interrupted=True)
            self._open[event.job_id] = self._start(event, event.at)
            return
        span = self._open.pop(event.job_id, None)
        if span is None:
            # No start seen here: an attempt that ended (its start went unseen) or a job
            # that never ran (expired, parked, cancelled while waiting, recovered).
            begin = event.at - event.duration_s if event.duration_s is not None else event.at
            span = self._start(event, begin)
        self._close(span, event)

    def _start(self, event: JobEvent, at: float) -> Any:
        context = None
        if event.traceparent:
            context = self._propagator.extract({TRACEPARENT: event.traceparent})
        attributes = {
            "messaging.system": "bananas",
            "messaging.operation.type": "process",
            "messaging.destination.name": event.routing_key,
            "messaging.message.id": event.job_id,
            "bananas.job.name": event.name,
            "bananas.job.priority": event.priority,
            "bananas.job.attempt": event.attempt,
            "bananas.worker.id": event.worker_id,
        }
        return self._tracer.start_span(
            f"process {event.name}",
            context=context,
            kind=self._trace.SpanKind.CONSUMER,
            attributes=attributes,
            start_time=_ns(at),
        )

    def _close(self, span: Any, event: JobEvent, *, interrupted: bool = False) -> None:
        if span is None:
            return
        if interrupted:
            span.set_attribute("bananas.job.outcome", "unknown")
            span.end(end_time=_ns(event.at))
            return
        span.set_attribute("bananas.job.outcome", event.kind.value)
        if not event.applied:
            span.set_attribute("bananas.job.applied", False)
        if event.kind in (EventKind.RETRYING, EventKind.DEAD):
            status = self._trace.Status(self._trace.StatusCode.ERROR, event.error or event.kind.value)
            span.set_status(status)
            if event.retry_at is not None:
                span.set_attribute("bananas.job.retry_at", event.retry_at)
        elif event.kind is EventKind.SUCCEEDED:
            span.set_status(self._trace.Status(self._trace.StatusCode.OK))
        span.end(end_time=_ns(event.at))
