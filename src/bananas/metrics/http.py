"""Serving a registry at ``/metrics`` over HTTP, in a daemon thread."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from bananas.errors import ConfigurationError


class MetricsServer:
    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(registry: CollectorRegistry, port: int, host: str = "", setting: str = "--metrics-port") -> MetricsServer:
    """Serve ``registry`` on ``host:port`` (every interface by default); a port that cannot
    be bound is a ``ConfigurationError`` naming ``setting``."""
    try:
        server, thread = start_http_server(port, addr=host or "0.0.0.0", registry=registry)
    except OSError as exc:
        raise ConfigurationError(setting, f"cannot serve metrics on port {port}: {exc.strerror or exc}") from None
    return MetricsServer(server, thread)
