"""``/metrics``: the fleet's queue gauges, from the same collector ``bananas exporter`` serves."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bananas.client import Client
from bananas.metrics.queues import exporter_registry


class QueueMetrics:
    """Scrapes the exporter's registry (``bananas.metrics.queues``) over the dashboard's client."""

    def __init__(self, client: Client) -> None:
        self._registry = exporter_registry(client)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self._registry), CONTENT_TYPE_LATEST
