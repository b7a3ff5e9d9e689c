"""Prometheus metrics (docs/OPERATIONS.md, "Metrics").

* ``WorkerMetrics``: a listener of the job events, per worker (or worker group).
* ``queue_collector(client)``: the fleet's queue gauges, read from Redis on scrape
  (``bananas exporter``, and the dashboard's ``/metrics``).

This package is the only one that imports prometheus-client; the worker does not.
"""

from bananas.metrics.queues import QueueCollector, exporter_registry, queue_collector
from bananas.metrics.worker import WorkerMetrics

__all__ = ["QueueCollector", "WorkerMetrics", "exporter_registry", "queue_collector"]
