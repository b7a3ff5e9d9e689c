"""``bananas dashboard``: the web dashboard, JSON API, metrics and health checks on one port."""

from __future__ import annotations

import os
import socket

import click

from bananas.cli.common import fail, redis_url_option, resolve_redis_url, setup_logging
from bananas.redis.connection import mask_url

TOKEN_ENV = "BANANAS_API_TOKEN"


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (non-loopback needs BANANAS_API_TOKEN).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option("--public-read", is_flag=True, help="Serve reads (GET) without the token; writes still need it.")
@click.option(
    "--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default $BANANAS_LOG_LEVEL, then INFO)."
)
@redis_url_option
def dashboard(host: str, port: int, public_read: bool, log_level: str | None, redis_url: str | None) -> None:
    """Serve the dashboard at /, the JSON API under /api/v1/, /openapi.json, /metrics, /healthz and /readyz.

    Every write needs `Authorization: Bearer $BANANAS_API_TOKEN`; without the variable a
    token is generated and printed once, inside a ready-to-open URL.
    """
    url = resolve_redis_url(redis_url)
    setup_logging(log_level or os.environ.get("BANANAS_LOG_LEVEL", "INFO"), url)
    serve(url, host, port, public_read=public_read)


def serve(url: str, host: str = "127.0.0.1", port: int = 8080, *, public_read: bool = False) -> None:
    """Serve the dashboard over ``url`` until Ctrl-C (also used by ``bananas demo --dashboard``)."""
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    try:
        import uvicorn

        from bananas.client import Client
        from bananas.dashboard import DashboardSettings, create_app
        from bananas.dashboard.auth import is_loopback, new_token
    except ImportError as exc:
        fail(f"bananas dashboard needs its extra ({exc.name} is missing): pip install 'bananas[dashboard]'")
    if token is None and not is_loopback(host):
        fail(
            f"refusing to serve on {host} (not a loopback address) without {TOKEN_ENV} set; set it, or use --host 127.0.0.1"
        )
    generated = token is None
    token = token or new_token()
    listener = _listen(host, port)
    bound_port = listener.getsockname()[1]
    app = create_app(Client(url), DashboardSettings(token=token, public_read=public_read))
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{bound_port}/"
    click.echo(f"Bananas dashboard on {address} (Redis {mask_url(url)})")
    if generated:
        click.echo(f"No {TOKEN_ENV} set: generated a token for this run. Open this URL (it carries the token):")
        click.echo(f"    {address}#token={token}")
    else:
        click.echo(f"API token: from {TOKEN_ENV}. Open {address}#token=YOUR_TOKEN, or enter it on the page.")
    if public_read:
        click.echo("Reads are public (--public-read); writes need the token.")
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
    uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """Bind here, so a taken port is one clear line (and ``--port 0`` can be printed)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"--host {host!r}: {exc.strerror}")
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    listener.set_inheritable(True)
    return listener
