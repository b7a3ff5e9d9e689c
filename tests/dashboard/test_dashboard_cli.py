"""``bananas dashboard`` as a user runs it: the printed URL, the token, the refusals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def launched(cli_env: dict[str, str]) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _start(env: dict[str, str], procs: list[subprocess.Popen[str]], *args: str) -> tuple[str, list[str]]:
    proc = subprocess.Popen(
        ["bananas", "dashboard", "--port", "0", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    procs.append(proc)
    lines: list[str] = []
    deadline = time.monotonic() + 20
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"dashboard exited early: {''.join(lines)}")
        lines.append(line.rstrip("\n"))
        if line.startswith(("API token", "    http")):
            if "--public-read" in args:
                lines.append(proc.stdout.readline().rstrip("\n"))
            break
    address = re.search(r"on (http://\S+/)", lines[0])
    assert address, lines
    return address.group(1), lines


def test_without_a_token_one_is_generated_and_printed_once_in_a_url(
    cli_env: dict[str, str], launched: list[subprocess.Popen[str]]
) -> None:
    url, lines = _start(cli_env, launched)
    link = next(line.strip() for line in lines if "#token=" in line)
    token = link.split("#token=", 1)[1]
    assert link.startswith(url) and len(token) >= 24
    assert sum(token in line for line in lines) == 1
    assert httpx.get(f"{url}readyz").json() == {"status": "ok"}
    assert httpx.get(f"{url}api/v1/limits").status_code == 401
    authed = httpx.get(f"{url}api/v1/limits", headers={"Authorization": f"Bearer {token}"})
    assert authed.status_code == 200
    assert "Bananas" in httpx.get(url).text


def test_the_token_comes_from_the_environment_and_public_read(
    cli_env: dict[str, str], launched: list[subprocess.Popen[str]]
) -> None:
    env = {**cli_env, "BANANAS_API_TOKEN": "from-the-env-0123"}
    url, lines = _start(env, launched, "--public-read")
    assert not any("from-the-env-0123" in line for line in lines)
    assert httpx.get(f"{url}api/v1/limits").status_code == 200
    assert httpx.post(f"{url}api/v1/dead/purge").status_code == 401
    headers = {"Authorization": "Bearer from-the-env-0123"}
    assert httpx.post(f"{url}api/v1/dead/purge", headers=headers).json() == {"removed": 0}


def test_the_redis_password_is_never_printed_or_served(
    cli_env: dict[str, str], launched: list[subprocess.Popen[str]], redis_url: str
) -> None:
    secret_url = redis_url.replace("redis://", "redis://user:hunter2secret@")
    env = {**cli_env, "REDIS_URL": secret_url, "BANANAS_API_TOKEN": "t0ken-t0ken"}
    url, lines = _start(env, launched)
    headers = {"Authorization": "Bearer t0ken-t0ken"}
    replies = [httpx.get(f"{url}readyz"), httpx.get(f"{url}api/v1/limits", headers=headers), httpx.get(url)]
    assert replies[0].status_code == 503
    proc = launched[0]
    os.kill(proc.pid, signal.SIGTERM)
    rest, _ = proc.communicate(timeout=10)
    assert "hunter2secret" not in "\n".join(lines) + rest
    assert all("hunter2secret" not in reply.text for reply in replies)


def test_a_non_loopback_host_without_a_token_is_refused(cli_env: dict[str, str]) -> None:
    done = subprocess.run(["bananas", "dashboard", "--host", "0.0.0.0", "--port", "0"], env=cli_env,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "BANANAS_API_TOKEN" in done.stderr and "0.0.0.0" in done.stderr


def test_a_taken_port_is_one_line(cli_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(["bananas", "dashboard", "--port", port], env=cli_env, capture_output=True, text=True,
                              timeout=30)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"bananas: error: cannot listen on 127.0.0.1:{port}")


def test_demo_with_the_dashboard_shows_the_routing_map_and_stops_on_ctrl_c(
    cli_env: dict[str, str], launched: list[subprocess.Popen[str]], tmp_path: object
) -> None:
    proc = subprocess.Popen(
        ["bananas", "demo", "--jobs", "6", "--data-dir", str(tmp_path), "--dashboard", "0"], env=cli_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    launched.append(proc)
    assert proc.stdout is not None
    link = None
    deadline = time.monotonic() + 60
    while link is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the demo exited before serving the dashboard"
        if "#token=" in line:
            link = line.strip()
    assert link is not None
    base, token = link.split("#token=")
    overview = httpx.get(f"{base}api/v1/overview", headers={"Authorization": f"Bearer {token}"}).json()
    rows = {row["routing_key"]: row for row in overview["routes"]}
    assert rows["reports"]["orphaned"] is True and rows["reports"]["ready"] == 5
    assert rows["gpu"]["consumers"] == 2
    os.kill(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "workers stopped" in rest
