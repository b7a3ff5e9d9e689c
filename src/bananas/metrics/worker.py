"""Worker metrics: a listener of the job events that counts them in prometheus-client.

Labels are ``routing_key``, ``priority`` and ``name``; ``name`` only takes the names this
worker has a handler for (anything else counts as ``other``), so a producer cannot grow
the number of series by inventing job names. No job ids, hosts or pids in labels.

Under a supervisor (``--processes N``) the values go to prometheus-client's multiprocess
directory ($PROMETHEUS_MULTIPROC_DIR, set by the supervisor before this process started)
and the supervisor serves the sum; see ``bananas.metrics.group``.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bananas.events import EventKind, JobEvent

#: Stands for every job name this worker has no handler for.
OTHER = "other"
LABELS = ("routing_key", "priority", "name")
#: Seconds; from a few milliseconds up to an hour, as jobs range that widely.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

_COUNTED: dict[EventKind, tuple[str, ...]] = {
    EventKind.STARTED: ("started",),
    EventKind.SUCCEEDED: ("succeeded",),
    EventKind.RETRYING: ("failed", "retried"),
    EventKind.DEAD: ("failed", "dead"),
    EventKind.RECOVERED: ("recovered",),
    EventKind.CANCELLED: ("cancelled",),
    EventKind.EXPIRED: ("expired",),
}

_HELP = {
    "started": "Attempts started.",
    "succeeded": "Attempts that succeeded (job completed, result stored).",
    "failed": "Attempts that failed, whether retried or sent to the dead letters.",
    "retried": "Failed attempts for which a retry was scheduled.",
    "dead": "Jobs that failed for good and went to the dead letters.",
    "recovered": "Jobs whose worker was lost (lease expired), put back in their queue by this worker.",
    "cancelled": "Jobs cancelled by an operator.",
    "expired": "Jobs that were not started before their expires_at and will never run.",
}


class WorkerMetrics:
    """The listener: ``Listeners.add(WorkerMetrics(registry.names))``; cheap per event
    (a dict lookup and an increment)."""

    def __init__(self, handled: Iterable[str], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._handled = frozenset(handled)
        self._counters = {
            key: Counter(f"bananas_jobs_{key}_total", text, LABELS, registry=self.registry)
            for key, text in _HELP.items()
        }
        self._duration = Histogram(
            "bananas_job_duration_seconds",
            "Seconds each attempt ran, by its outcome's labels.",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._running = Gauge(
            "bananas_worker_jobs_running",
            "Jobs running now in this worker (in the whole process group under a supervisor).",
            ("routing_key",),
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str, str], Counter] = {}
        self._durations: dict[tuple[str, str, str], Histogram] = {}
        self._in_flight: dict[str, str] = {}

    def label(self, name: str) -> str:
        return name if name in self._handled else OTHER

    def __call__(self, event: JobEvent) -> None:
        kind = event.kind
        self._track_running(event)
        if not event.applied:
            return  # Redis refused it: nothing happened to the job.
        name = self.label(event.name)
        for key in _COUNTED.get(kind, ()):
            index = (key, event.routing_key, event.priority, name)
            child = self._children.get(index)
            if child is None:
                child = self._children[index] = self._counters[key].labels(event.routing_key, event.priority, name)
            child.inc()
        if event.duration_s is not None:
            labels = (event.routing_key, event.priority, name)
            histogram = self._durations.get(labels)
            if histogram is None:
                histogram = self._durations[labels] = self._duration.labels(*labels)
            histogram.observe(max(0.0, event.duration_s))

    def _track_running(self, event: JobEvent) -> None:
        # A start raises the gauge; whatever comes next for that job in this process
        # (its outcome, a give-back, a refused late ack) lowers it again. Events of jobs
        # that did not start here (recoveries of other workers' jobs) leave it alone.
        if event.kind is EventKind.STARTED:
            if event.job_id not in self._in_flight:
                self._in_flight[event.job_id] = event.routing_key
                self._running.labels(event.routing_key).inc()
            return
        route = self._in_flight.pop(event.job_id, None)
        if route is not None:
            self._running.labels(route).dec()
