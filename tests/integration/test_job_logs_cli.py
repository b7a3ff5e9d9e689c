"""Job log lines of a real ``bananas worker``: text and JSON, and the readable start line."""

from __future__ import annotations

import json
import signal

import redis
from support import CliRunner, wait_until

from bananas import Client


def test_json_log_has_one_object_per_line_with_the_job_fields(cli: CliRunner, client: Client, r: redis.Redis) -> None:
    proc = cli.worker("--log-format", "json", "--routing-keys", "default", "--log-level", "DEBUG")
    cli.wait_ready(proc)
    ok = client.submit_job("noop", None, priority="high")
    bad = client.submit_job("boom", None, max_retries=0)
    wait_until(lambda: r.llen("test:ran") == 2, what="both jobs to run")

    def job_lines() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in cli.output(proc).splitlines() if line.strip()]
        return [line for line in lines if "event" in line]

    lines = wait_until(lambda: len(job_lines()) >= 4 and job_lines(), what="four job lines")
    by_event = {(line["job_id"], line["event"]): line for line in lines}
    done = by_event[(ok, "succeeded")]
    assert done["name"] == "noop" and done["routing_key"] == "default" and done["priority"] == "high"
    assert done["attempt"] == 1 and isinstance(done["duration_s"], float) and done["level"] == "INFO"
    assert done["worker_id"] and isinstance(done["worker_id"], str)
    assert by_event[(ok, "started")]["level"] == "DEBUG"
    dead = by_event[(bad, "dead")]
    assert dead["error"] == "ValueError: boom"
    proc.send_signal(signal.SIGTERM)
    assert cli.wait_exit(proc) == 0


def test_text_log_start_line_is_readable_and_names_cannot_forge_lines(
    cli: CliRunner, client: Client, r: redis.Redis
) -> None:
    proc = cli.worker(
        "--routing-keys", "gpu,default", "--priorities", "high,normal,low", "--concurrency", "3",
        env={"BANANAS_LOG_FORMAT": "text", "WORKER_UNKNOWN_JOBS": "fail"},
    )  # fmt: skip
    cli.wait_ready(proc)
    # The worker announces itself in Redis and logs its start line side by side: wait
    # for the line rather than assume it is written first.
    start_line = "consuming gpu > default, high > normal > low, concurrency 3"
    wait_until(lambda: start_line in cli.output(proc), what="the start line")
    assert "bananas:route" not in cli.output(proc)
    client.submit_job("evil\nINFO bananas.worker: forged line", None, max_retries=0)
    wait_until(lambda: "failed" in cli.output(proc), what="the failure line")
    output = cli.output(proc)
    assert "evil\\nINFO bananas.worker: forged line" in output
    assert not any(line.startswith("INFO bananas.worker: forged") for line in output.splitlines())


def test_bad_log_format_is_a_one_line_error(cli: CliRunner) -> None:
    done = cli.run("worker", "apps.basic:registry", "--log-format", "xml")
    assert done.returncode == 2
    assert done.stderr.strip() == "bananas: error: --log-format: unknown log format 'xml' (use text or json)"
    done = cli.run("scheduler", env={"BANANAS_LOG_FORMAT": "yaml"})
    assert done.returncode == 2 and "BANANAS_LOG_FORMAT: unknown log format 'yaml'" in done.stderr


def test_scheduler_logs_json_too(cli: CliRunner) -> None:
    proc = cli.start("scheduler", "--log-format", "json")
    lines = wait_until(
        lambda: [json.loads(line) for line in cli.output(proc).splitlines() if line.strip()] or None,
        what="the scheduler's first lines",
    )
    assert any(line["logger"] == "bananas.scheduler" and "no schedules" in line["message"] for line in lines)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
