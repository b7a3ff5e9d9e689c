"""Fixtures for the dashboard tests: the real app served by uvicorn on a free loopback
port (in a thread of the test process), over the session's Redis server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from dashboard_support import TOKEN, Served, ServerThread

from bananas import Client, Router
from bananas.dashboard import DashboardSettings, create_app


@pytest.fixture
def serve(redis_url: str) -> Iterator[Callable[..., Served]]:
    """``serve(public_read=False, router=None, max_body_bytes=...)``: a running dashboard."""
    started: list[tuple[ServerThread, Client]] = []

    def start(*, router: Router | None = None, url: str | None = None, **settings: object) -> Served:
        # An explicit router (empty by default) keeps $BANANAS_ROUTES out of the tests.
        client = Client(url or redis_url, router=router if router is not None else Router())
        app = create_app(client, DashboardSettings(token=TOKEN, **settings))  # type: ignore[arg-type]
        server = ServerThread(app)
        server.start()
        started.append((server, client))
        return Served(f"http://127.0.0.1:{server.port}", TOKEN, client)

    yield start
    for server, client in started:
        server.stop()
        client.close()


@pytest.fixture
def dash(serve: Callable[..., Served]) -> Served:
    return serve()


@pytest.fixture
def api(dash: Served) -> Iterator[httpx.Client]:
    with dash.http() as client:
        yield client
