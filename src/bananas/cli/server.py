"""``bananas server``: the embedded Redis-compatible server in the foreground, for trying
Bananas and its examples on a machine without Redis. Not for production."""

from __future__ import annotations

import signal
import time

import click

from bananas.embedded import EmbeddedServer


@click.command()
@click.option("--port", type=int, default=6390, show_default=True, help="Loopback port to listen on.")
@click.option("--data-dir", default=".bananas-server", show_default=True, help="Where it keeps its data.")
@click.option("--appendonly/--no-appendonly", default=True, show_default=True, help="Persist with an append-only file.")
def server(port: int, data_dir: str, appendonly: bool) -> None:
    """Run an embedded Redis-compatible server on 127.0.0.1 until Ctrl-C."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with EmbeddedServer(data_dir, port=port, appendonly=appendonly) as embedded:
        click.echo(f"serving on {embedded.url} (data in {data_dir}/); export REDIS_URL={embedded.url}")
        while not stopping and embedded.process is not None and embedded.process.poll() is None:
            time.sleep(0.2)
    click.echo("server stopped")
