"""``bananas server`` (issue 9, item 12): a port that is taken is a one-line error with a
non-zero exit, never "serving on ..." (which would send users to someone else's server);
no hang when a non-Redis process holds the port; a bad port number is one line."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bananas.embedded import EmbeddedServer, free_port


def _server(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bananas", "server", "--data-dir", str(tmp_path / "data"), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"bananas server still running after {timeout}s: {out} {err}") from None
    return proc.returncode, out, err


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port held by a process that accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_port_held_by_another_redis(redis_server: EmbeddedServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    code, out, err = _finish(_server(tmp_path, cli_env, "--port", str(redis_server.port)), 20)
    assert code != 0
    assert "serving on" not in out and "REDIS_URL" not in out
    assert err.startswith("bananas: error: ") and len(err.strip().splitlines()) == 1, err
    assert f"port {redis_server.port}" in err and "already in use" in err and "Traceback" not in err


def test_port_held_by_something_else_fails_fast(
    silent_listener: int, cli_env: dict[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    code, out, err = _finish(_server(tmp_path, cli_env, "--port", str(silent_listener)), 20)
    assert code != 0 and time.monotonic() - started < 10
    assert "serving on" not in out
    assert len(err.strip().splitlines()) == 1 and "already in use" in err, err


@pytest.mark.parametrize("port", ["70000", "0", "-1", "abc"])
def test_bad_port_is_one_line(port: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    code, out, err = _finish(_server(tmp_path, cli_env, "--port", port), 20)
    assert code == 2 and out == ""
    assert err.startswith("bananas: error: ") and len(err.strip().splitlines()) == 1, err
    assert "--port" in err and "Traceback" not in err


def test_serves_until_ctrl_c(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    proc = _server(tmp_path, cli_env, "--port", str(port), "--no-appendonly")
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert f"serving on redis://127.0.0.1:{port}/0" in line
    proc.send_signal(signal.SIGINT)
    code, out, err = _finish(proc, 20)
    assert code == 0 and "server stopped" in out and "Traceback" not in err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the server is gone: the port is free again
