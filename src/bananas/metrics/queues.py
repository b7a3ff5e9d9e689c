"""Queue metrics, read from Redis on each scrape, once for the whole fleet.

``queue_collector(client)`` is a prometheus-client ``Collector`` that ``bananas exporter``
serves and the dashboard reuses at its own ``/metrics``. It reads through the client's
read model (``Client.queue_stats()``: one pipelined read, a few round trips whatever
the number of routing keys), never Redis keys of its own.
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
        by_route = ("routing_key",)
        by_queue = ("routing_key", "priority")
        ready = GaugeMetricFamily("bananas_queue_ready_jobs", "Jobs ready to run.", labels=by_queue)
        oldest = GaugeMetricFamily(
            "bananas_queue_oldest_job_age_seconds",
            "Seconds the oldest ready job has waited (0: none).",
            labels=by_queue,
        )
        # The legacy pre-routing lists are drained by ``default`` workers: counted there.
        queue_paused = GaugeMetricFamily(
            "bananas_queue_paused", "1 when the routing key, or this priority of it, is paused.", labels=by_queue
        )
        depths: dict[tuple[str, str], tuple[int, float, bool]] = {}
        for depth in stats.queues:
            index = (depth.routing_key, depth.priority.value)
            count, age, held = depths.get(index, (0, 0.0, False))
            depths[index] = (count + depth.ready, max(age, depth.oldest_age_seconds or 0.0), held or depth.paused)
        for labels, (count, age, held) in depths.items():
            ready.add_metric(list(labels), count)
            oldest.add_metric(list(labels), age)
            queue_paused.add_metric(list(labels), 1 if held else 0)
        yield from (ready, oldest, queue_paused)
        consumers = GaugeMetricFamily(
            "bananas_route_consumers", "Live workers listening on the routing key.", labels=by_route
        )
        orphaned = GaugeMetricFamily(
            "bananas_route_orphaned",
            "1 when jobs are ready and no live worker listens on the routing key.",
            labels=by_route,
        )
        paused = GaugeMetricFamily("bananas_route_paused", "1 when the routing key is paused.", labels=by_route)
        in_flight = GaugeMetricFamily("bananas_jobs_in_flight", "Jobs of the routing key running now.", labels=by_route)
        for stat in stats.routes:
            consumers.add_metric([stat.routing_key], stat.consumers)
            orphaned.add_metric([stat.routing_key], 1 if stat.orphaned else 0)
            paused.add_metric([stat.routing_key], 1 if stat.paused else 0)
            in_flight.add_metric([stat.routing_key], stat.in_flight)
        yield from (consumers, orphaned, paused, in_flight)
        parked = GaugeMetricFamily(
            "bananas_parked_jobs",
            "Jobs waiting for a worker that has a handler for their name, per routing key and job name.",
            labels=("routing_key", "name"),
        )
        for key, name, count in _bounded_names(stats):
            parked.add_metric([key, name], count)
        yield parked
        yield GaugeMetricFamily(
            "bananas_scheduled_jobs", "Jobs waiting for their due time (delayed, retries).", value=stats.scheduled
        )
        yield GaugeMetricFamily("bananas_dead_jobs", "Jobs in the dead letters.", value=stats.dead)
        yield GaugeMetricFamily("bananas_workers", "Live worker processes.", value=stats.workers)


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
