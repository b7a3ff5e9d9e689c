"""Bad input at the CLI: ``bananas submit`` flags and environment, ``bananas worker``
environment and APP. Each error is one line on stderr naming what is wrong, the exit
code is non-zero, there is no traceback, and nothing is written."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import redis
from click.testing import CliRunner, Result
from input_helpers import snapshot

from bananas.cli.main import cli

CLEAN_ENV = {
    name: None
    for name in (
        "WORKER_ROUTING_KEYS", "WORKER_PRIORITIES", "WORKER_CONCURRENCY", "WORKER_PROCESSES", "JOB_TIMEOUT",
        "JOB_LEASE_SECONDS", "MAX_RETRIES", "JOB_COMPLETED_TTL", "JOB_FAILED_TTL", "DEAD_LETTER_MAX",
        "BANANAS_MAX_PAYLOAD_BYTES", "BANANAS_LOG_LEVEL", "WORKER_SHUTDOWN_GRACE", "RETRY_BACKOFF_BASE",
    )
}  # fmt: skip


def invoke(redis_url: str, args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process; ``bananas worker`` configures the root logger, so it is
    put back afterwards (other tests rely on it)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(cli, args, env={**CLEAN_ENV, "REDIS_URL": redis_url, **(env or {})})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


SUBMIT_CASES = {
    "routing key empty": (["--routing-key", ""], {}, ["invalid routing key ''", "must not be empty"]),
    "routing key 65 chars": (["--routing-key", "k" * 65], {}, ["65 characters long"]),
    "routing key space": (["--routing-key", "a b"], {}, ["invalid routing key 'a b'"]),
    "routing key slash": (["--routing-key", "a/b"], {}, ["'/'"]),
    "routing key dot": (["--routing-key", "a.b"], {}, ["'.'"]),
    "routing key brace": (["--routing-key", "{a}"], {}, ["'{'"]),
    "routing key unicode": (["--routing-key", "ключ"], {}, ["'к'"]),
    "priority": (["--priority", "urgent"], {}, ["unknown priority 'urgent'"]),
    "payload not JSON": (["--payload", "{oops"], {}, ["--payload is not valid JSON"]),
    "payload NaN": (["--payload", '{"a": NaN}'], {}, ["NaN is not allowed"]),
    "payload Infinity": (["--payload", "[Infinity]"], {}, ["Infinity is not allowed"]),
    "payload overflows to inf": (["--payload", "1e400"], {}, ["NaN or Infinity"]),
    "payload int > 64 bit": (["--payload", str(2**70)], {}, ["not JSON-serializable"]),
    "payload above env limit": (
        ["--payload", '"' + "x" * 200 + '"'],
        {"BANANAS_MAX_PAYLOAD_BYTES": "100"},
        ["202 bytes encoded, above the limit of 100 bytes"],
    ),
    "payload limit not a number": ([], {"BANANAS_MAX_PAYLOAD_BYTES": "1MB"}, ["BANANAS_MAX_PAYLOAD_BYTES"]),
    "payload limit zero": ([], {"BANANAS_MAX_PAYLOAD_BYTES": "0"}, ["BANANAS_MAX_PAYLOAD_BYTES", "at least 1"]),
    "delay negative": (["--delay", "-1"], {}, ["delay must be a finite number of seconds >= 0"]),
    "delay nan": (["--delay", "nan"], {}, ["finite number"]),
    "delay inf": (["--delay", "inf"], {}, ["finite number"]),
    "delay absurd": (["--delay", "1e12"], {}, ["more than ten years"]),
    "max retries negative": (["--max-retries", "-1"], {}, ["max_retries must be an integer >= 0"]),
    "MAX_RETRIES env": ([], {"MAX_RETRIES": "lots"}, ["MAX_RETRIES"]),
    "MAX_RETRIES env negative": ([], {"MAX_RETRIES": "-2"}, ["max_retries"]),
    "REDIS_URL not redis": ([], {"REDIS_URL": "http://localhost:6379"}, ["REDIS_URL", "not a Redis URL"]),
}


@pytest.mark.parametrize(("args", "env", "fragments"), SUBMIT_CASES.values(), ids=SUBMIT_CASES.keys())
def test_submit_rejects_bad_input(
    args: list[str], env: dict[str, str], fragments: list[str], r: redis.Redis, redis_url: str
) -> None:
    before = snapshot(r)
    assert_one_line_error(invoke(redis_url, ["submit", "task", *args], env), *fragments)
    assert snapshot(r) == before


def test_submit_empty_job_name(r: redis.Redis, redis_url: str) -> None:
    assert_one_line_error(invoke(redis_url, ["submit", ""]), "job name must be a non-empty string")
    assert r.dbsize() == 0


def test_submit_env_payload_limit_allows_larger_payloads(r: redis.Redis, redis_url: str) -> None:
    payload = '"' + "x" * 2_000 + '"'
    assert invoke(redis_url, ["submit", "task", "--payload", payload], {"BANANAS_MAX_PAYLOAD_BYTES": "1000"}).exit_code
    ok = invoke(redis_url, ["submit", "task", "--payload", payload], {"BANANAS_MAX_PAYLOAD_BYTES": "5000"})
    assert ok.exit_code == 0, ok.output
    assert r.llen("bananas:route:default:queue:normal") == 1


@pytest.mark.parametrize(
    "args", [["--max-retries", "many"], ["--delay", "soon"], ["--bogus"]], ids=["max-retries", "delay", "unknown"]
)
def test_submit_usage_errors_have_no_traceback(args: list[str], r: redis.Redis, redis_url: str) -> None:
    result = invoke(redis_url, ["submit", "task", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    # One line like every other error, not click's usage block (issue 9, item 18).
    assert result.stderr.startswith("bananas: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert args[0] in result.stderr and "Usage:" not in result.stderr
    assert r.dbsize() == 0


WORKER_CASES = {
    "routing keys only commas": {"WORKER_ROUTING_KEYS": ","},
    "routing key empty in list": {"WORKER_ROUTING_KEYS": "gpu,,email"},
    "routing key 65 chars": {"WORKER_ROUTING_KEYS": "k" * 65},
    "routing key space": {"WORKER_ROUTING_KEYS": "gpu,a b"},
    "routing key slash": {"WORKER_ROUTING_KEYS": "a/b"},
    "routing key dot": {"WORKER_ROUTING_KEYS": "a.b"},
    "routing key brace": {"WORKER_ROUTING_KEYS": "{a}"},
    "routing key unicode": {"WORKER_ROUTING_KEYS": "café"},
    "routing key twice": {"WORKER_ROUTING_KEYS": "gpu,gpu"},
    "priority unknown": {"WORKER_PRIORITIES": "high,urgent"},
    "priority twice": {"WORKER_PRIORITIES": "high,high"},
    "concurrency zero": {"WORKER_CONCURRENCY": "0"},
    "concurrency text": {"WORKER_CONCURRENCY": "ten"},
    "processes negative": {"WORKER_PROCESSES": "-1"},
    "timeout negative": {"JOB_TIMEOUT": "-5"},
    "timeout nan": {"JOB_TIMEOUT": "nan"},
    "lease too short": {"JOB_LEASE_SECONDS": "0.1"},
    "lease infinite": {"JOB_LEASE_SECONDS": "inf"},
    "max retries negative": {"MAX_RETRIES": "-1"},
    "completed ttl negative": {"JOB_COMPLETED_TTL": "-5"},
    "failed ttl text": {"JOB_FAILED_TTL": "a week"},
    "dead letter cap negative": {"DEAD_LETTER_MAX": "-1"},
    "redis url scheme": {"REDIS_URL": "http://localhost:6379"},
}


@pytest.mark.parametrize("env", WORKER_CASES.values(), ids=WORKER_CASES.keys())
def test_worker_refuses_bad_environment(env: dict[str, str], r: redis.Redis, redis_url: str) -> None:
    [variable] = env
    before = snapshot(r)
    line = assert_one_line_error(invoke(redis_url, ["worker", "apps.basic:registry"], env), variable)
    if "ROUTING_KEYS" in variable and "twice" not in line and "at least one" not in line:
        assert "1 to 64 characters of A-Z a-z 0-9 _ -" in line
    assert snapshot(r) == before


@pytest.mark.parametrize(
    ("app", "fragment"),
    [
        ("apps.basic", "APP must be 'module:attribute'"),
        ("no_such_module:registry", "cannot import module 'no_such_module'"),
        ("apps.basic:nothing", "has no attribute 'nothing'"),
        ("apps.basic:store", "not a bananas.Registry"),
    ],
)
def test_worker_refuses_a_bad_app(app: str, fragment: str, redis_url: str) -> None:
    assert_one_line_error(invoke(redis_url, ["worker", app, "--log-level", "CRITICAL"]), fragment)


def test_real_processes_exit_with_one_line(cli_env: dict[str, str], r: redis.Redis) -> None:
    """The same rules through the installed entry point (no click test runner)."""
    runs = [
        (["worker", "apps.basic:registry"], {"WORKER_ROUTING_KEYS": "gpu,a.b"}, "WORKER_ROUTING_KEYS"),
        (["worker", "apps.basic:registry"], {"BANANAS_LOG_LEVEL": "LOUD"}, "BANANAS_LOG_LEVEL"),
        (["submit", "task", "--routing-key", "a/b"], {}, "invalid routing key 'a/b'"),
    ]
    for args, env, fragment in runs:
        done = subprocess.run(
            [sys.executable, "-m", "bananas", *args],
            env={**cli_env, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], done.stderr
    assert r.dbsize() == 0
