"""Queue metrics, read from Redis on each scrape, once for the whole fleet.

``queue_collector(client)`` is a prometheus-client ``Collector`` that ``bananas exporter``
serves and the dashboard reuses at its own ``/metrics``. It reads through the client's
read model (``Client.queue_stats()``, ``Client.workers()``), never Redis keys of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bananas.client.inspect import QueueStats
from bananas.metrics.worker import OTHER

log = logging.getLogger("bananas.metrics")

#: Job names shown per routing key in ``bananas_parked_jobs``; the rest count as ``other``.
MAX_PARKED_NAMES = 50


class ReadModel(Protocol):
    def queue_stats(self) -> QueueStats: ...


class QueueCollector(Collector):
    def __init__(self, client: ReadModel) -> None:
        self._client = client

    def describe(self) -> Iterable[Any]:
        # Nothing up front: describing would read Redis at registration time.
        return []

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("bananas_redis_up", "1 if the last scrape could read Redis, else 0.")
        try:
            families = list(self._families())
        except Exception as exc:
            log.warning("reading the queues for metrics failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Any]:
        stats = self._client.queue_stats()
        ready = GaugeMetricFamily(
            "bananas_queue_ready_jobs",
            "Jobs ready to run, per routing key and priority.",
            labels=("routing_key", "priority"),
        )
        for depth in stats.queues:
            if depth.legacy:
                continue
            ready.add_metric([depth.routing_key, depth.priority.value], depth.ready)
        yield ready
        parked = GaugeMetricFamily(
            "bananas_parked_jobs",
            "Jobs waiting for a worker that has a handler for their name, per routing key and job name.",
            labels=("routing_key", "name"),
        )
        for route, name, count in _bounded_names(stats):
            parked.add_metric([route, name], count)
        yield parked
        yield GaugeMetricFamily(
            "bananas_scheduled_jobs", "Jobs waiting for their due time (delayed, retries).", value=stats.scheduled
        )
        yield GaugeMetricFamily("bananas_dead_jobs", "Jobs in the dead letters.", value=stats.dead)


def _bounded_names(stats: QueueStats) -> list[tuple[str, str, int]]:
    """Parked jobs per routing key and name; past ``MAX_PARKED_NAMES`` names on a routing
    key, the smallest are summed as ``other`` (a producer inventing names must not grow
    the number of series without bound)."""
    per_route: dict[str, dict[str, int]] = {}
    for entry in stats.parked:
        names = per_route.setdefault(entry.routing_key, {})
        names[entry.job_name] = names.get(entry.job_name, 0) + entry.waiting
    out: list[tuple[str, str, int]] = []
    for route in sorted(per_route):
        ranked = sorted(per_route[route].items(), key=lambda item: (-item[1], item[0]))
        kept, rest = ranked[:MAX_PARKED_NAMES], ranked[MAX_PARKED_NAMES:]
        out += [(route, name, count) for name, count in kept]
        if rest:
            out.append((route, OTHER, sum(count for _, count in rest)))
    return out


def queue_collector(client: ReadModel) -> QueueCollector:
    """The fleet's queue gauges, read from Redis at each scrape through ``client``."""
    return QueueCollector(client)


def exporter_registry(client: ReadModel) -> CollectorRegistry:
    """A registry holding only ``queue_collector(client)`` (what ``bananas exporter`` serves)."""
    registry = CollectorRegistry()
    registry.register(queue_collector(client))
    return registry
