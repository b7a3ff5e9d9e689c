"""``bananas server``: the embedded Redis-compatible server in the foreground, for trying
Bananas and its examples on a machine without Redis. Not for production."""

from __future__ import annotations

import signal
import time

import click

from bananas.cli.common import fail


@click.command()
@click.option(
    "--port", type=click.IntRange(1, 65535), default=6390, show_default=True, help="Loopback port to listen on."
)
@click.option("--data-dir", default=".bananas-server", show_default=True, help="Where it keeps its data.")
@click.option("--appendonly/--no-appendonly", default=True, show_default=True, help="Persist with an append-only file.")
def server(port: int, data_dir: str, appendonly: bool) -> None:
    """Run an embedded Redis-compatible server on 127.0.0.1 until Ctrl-C."""
    from bananas.embedded import EmbeddedServer, PortInUseError

    embedded = EmbeddedServer(data_dir, port=port, appendonly=appendonly)
    signal.signal(signal.SIGTERM, _interrupt)  # while starting, as Ctrl-C: stop what started
    try:
        embedded.start()
    except KeyboardInterrupt:
        embedded.stop()
        click.echo("interrupted while starting; server stopped", err=True)
        raise SystemExit(130) from None
    except PortInUseError as exc:
        fail(str(exc), code=1)
    except (RuntimeError, OSError) as exc:
        embedded.stop()
        fail(f"the embedded server did not start: {_first_line(str(exc))}", code=1)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        click.echo(f"serving on {embedded.url} (data in {data_dir}/); export REDIS_URL={embedded.url}")
        while not stopping and embedded.process is not None and embedded.process.poll() is None:
            time.sleep(0.2)
    finally:
        embedded.stop()
    if not stopping:
        code = embedded.process.returncode if embedded.process is not None else None
        fail(f"the embedded server exited on its own (code {code}); see {data_dir}/server.log", code=1)
    click.echo("server stopped")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no reason given"
