"""``bananas dlq list|show|retry|purge``: output, filters, confirmation and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis
from click.testing import CliRunner, Result

from bananas.cli.main import cli
from bananas.core.job import Job, JobStatus, new_job
from bananas.core.priority import Priority
from bananas.redis import calls, keys
from bananas.redis.runner import SyncRunner

DEAD = "bananas:queue:dead"
TRACEBACK = 'Traceback (most recent call last):\n  File "tasks.py", line 3, in resize\n    raise ValueError'


def bury(r: redis.Redis, name: str, routing_key: str, priority: Priority, error: str, **extra: object) -> Job:
    job = new_job(name, {"w": 2}, priority, routing_key, now=datetime.now(UTC), max_retries=3)
    job.attempts, job.status, job.error = 4, JobStatus.FAILED, error
    job.extra.update(extra)
    r.hset("bananas:lease:owners", job.id, "tok")
    SyncRunner(r).run(calls.bury(job.id, "tok", job.to_record(), 3600, 0, layout=keys.STANDALONE))
    return job


@pytest.fixture
def run(redis_url: str):  # type: ignore[no-untyped-def]
    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["dlq", *args], env={"REDIS_URL": redis_url}, input=input)

    return invoke


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bananas: error: ")
    return lines[0]


def test_list_shows_one_line_per_dead_job(run, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    assert "no dead letters" in run("list").stdout
    gpu = bury(r, "resize", "gpu", Priority.HIGH, f"ValueError: bad size\n{TRACEBACK}")
    mail = bury(r, "send_email", "email", Priority.LOW, "Fail: bounced")
    out = run("list").stdout
    header, first, second = out.splitlines()[:3]
    for column in ("ID", "NAME", "ROUTING KEY", "PRIORITY", "ATTEMPTS", "FAILED AT", "ERROR"):
        assert column in header
    assert mail.id in first and "send_email" in first and "email" in first and "low" in first
    assert gpu.id in second and "resize" in second and "gpu" in second and "high" in second
    assert " 4 " in second and "ValueError: bad size" in second and datetime.now(UTC).strftime("%Y-%m-%d") in second
    assert "Traceback" not in out  # first line of the error only
    assert "2 shown, 2 in the dead letter list" in out

    only_gpu = run("list", "--routing-key", "gpu", "--json").stdout.splitlines()
    assert [json.loads(line)["id"] for line in only_gpu] == [gpu.id]
    row = json.loads(only_gpu[0])
    assert row["error"] == "ValueError: bad size" and row["attempts"] == 4 and row["priority"] == "high"
    assert [json.loads(x)["id"] for x in run("list", "--name", "send_email", "--json").stdout.splitlines()] == [mail.id]
    assert len(run("list", "--limit", "1").stdout.splitlines()) == 4  # header, row, blank, footer
    assert "matching the filter" in run("list", "--routing-key", "nope").stdout


def test_show_prints_error_traceback_history_and_flags(run, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    history = [
        {"attempt": 1, "time": "2030-01-01T00:00:00+00:00", "error": "ValueError: first", "worker": "host:1:ab"},
        {"attempt": 2, "time": "2030-01-01T00:00:02+00:00", "error": "ValueError: bad size", "worker": "host:2:cd"},
    ]
    job = bury(r, "resize", "gpu", Priority.HIGH, f"ValueError: bad size\n{TRACEBACK}", history=history)
    out = run("show", job.id).stdout
    assert f"id:           {job.id}" in out
    assert "routing key:  gpu" in out and "priority:     high" in out
    assert "attempts:     4 (max_retries 3)" in out
    assert "error:        ValueError: bad size" in out
    assert "traceback:\n  Traceback (most recent call last):" in out
    assert "#1 2030-01-01T00:00:00+00:00 on host:1:ab: ValueError: first" in out
    assert "#2 2030-01-01T00:00:02+00:00 on host:2:cd: ValueError: bad size" in out
    assert "POISON PILL" not in out

    detail = json.loads(run("show", job.id, "--json").stdout)
    assert detail["history"] == history and detail["traceback"].startswith("Traceback")
    assert detail["payload"] == {"w": 2} and detail["recoveries"] == 0

    pill = bury(r, "crash", "gpu", Priority.NORMAL, "poison pill: worker died 4 times", recoveries=4, poison_pill=True)
    out = run("show", pill.id).stdout
    assert "recoveries:   4  POISON PILL" in out
    assert "[poison pill]" in run("list").stdout


def test_show_malformed_and_expired_entries(run, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    r.set("bananas:job:bad-1", b"{not json")
    r.lpush(DEAD, "bad-1", "gone-1")
    out = run("show", "bad-1").stdout
    assert "malformed:    yes" in out and "original:     {not json" in out
    assert "unreadable record: record is not valid JSON" in out
    assert "expired" in run("show", "gone-1").stdout
    listing = run("list").stdout
    assert "(record expired)" in listing and "[malformed]" in listing


def test_foreign_text_is_masked_and_cannot_drive_the_terminal(run, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    error = "ConnectionError: redis://app:hunter2@db:6379 refused \x1b[2J\x1b]0;pwned\x07"
    job = bury(r, "sync", "default", Priority.NORMAL, error)
    for out in (run("list").stdout, run("show", job.id).stdout, run("list", "--json").stdout):
        assert "hunter2" not in out and "redis://app:***@db:6379" in out
        assert "\x1b" not in out and "\x07" not in out


def test_retry_one_and_all(run, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    gpu = bury(r, "resize", "gpu", Priority.HIGH, "E: x")
    email = bury(r, "send_email", "email", Priority.LOW, "E: y")
    other = bury(r, "send_email", "email", Priority.NORMAL, "E: z")
    result = run("retry", gpu.id)
    assert result.exit_code == 0 and result.stdout.strip() == f"retried {gpu.id} -> bananas:route:gpu:queue:high"
    assert r.lrange("bananas:route:gpu:queue:high", 0, -1) == [gpu.id.encode()]

    again = run("retry", gpu.id)
    assert "was not retried: not in the dead letter list" in one_line_error(again) and again.exit_code == 1

    result = run("retry", "--all", "--routing-key", "email")
    assert result.exit_code == 0
    assert f"retried {email.id} -> bananas:route:email:queue:low" in result.stdout
    assert f"retried {other.id} -> bananas:route:email:queue:normal" in result.stdout
    assert "2 retried, 0 skipped" in result.stdout
    assert r.llen(DEAD) == 0


def test_retry_all_reports_what_it_skips(run, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    job = bury(r, "resize", "gpu", Priority.HIGH, "E: x")
    r.lpush(DEAD, "gone-1")
    result = run("retry", "--all")
    assert result.exit_code == 0
    assert f"retried {job.id}" in result.stdout and "1 retried, 1 skipped" in result.stdout
    assert "skipped gone-1: record expired" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("retry",), "give either a JOB_ID or --all"),
        (("retry", "abc", "--all"), "give either a JOB_ID or --all"),
        (("retry", "abc", "--routing-key", "gpu"), "apply to --all only"),
        (("list", "--routing-key", "a b"), "--routing-key: invalid routing key 'a b'"),
        (("purge", "--routing-key", "x" * 65, "--yes"), "65 characters long"),
        (("show", "missing-id"), "job 'missing-id' is not in the dead letter list"),
    ],
)
def test_usage_errors_are_one_line(run, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    assert message in one_line_error(run(*args))


def test_show_of_a_live_job_names_its_status(run, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    r.set("bananas:job:live-1", json.dumps({"id": "live-1", "status": "completed"}))
    assert "its record says status 'completed'" in one_line_error(run("show", "live-1"))


def test_purge_asks_first_then_deletes(run, r: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    gpu = bury(r, "resize", "gpu", Priority.HIGH, "E: x")
    email = bury(r, "send_email", "email", Priority.LOW, "E: y")
    refused = run("purge", input="n\n")
    assert refused.exit_code == 1 and "purge cancelled (nothing deleted)" in refused.stderr
    no_tty = run("purge", input="")
    assert no_tty.exit_code == 1 and r.llen(DEAD) == 2

    done = run("purge", "--routing-key", "gpu", input="y\n")
    assert done.exit_code == 0 and "routing key 'gpu'" in done.stdout and "purged 1 dead job(s)" in done.stdout
    assert not r.exists(f"bananas:job:{gpu.id}") and r.exists(f"bananas:job:{email.id}")
    assert "purged 1 dead job(s)" in run("purge", "--yes").stdout
    assert r.llen(DEAD) == 0 and not r.exists(f"bananas:job:{email.id}")


def test_dlq_is_a_command_of_the_installed_cli(cli_env: dict[str, str], r: redis.Redis) -> None:
    job = bury(r, "resize", "gpu", Priority.HIGH, "E: x")
    done = subprocess.run(
        [sys.executable, "-m", "bananas", "dlq", "list", "--json"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == job.id
