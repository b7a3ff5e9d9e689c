"""Secrets are never printed: the Redis password is masked in reprs, logs (tracebacks
included), CLI output and errors."""

from __future__ import annotations

import io
import logging
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from secure_server import SecureServer
from security_helpers import bananas, cli_env, wait_until, worker_process

from bananas import AsyncClient, Client, WorkerSettings
from bananas.cli.common import SecretMaskingFilter
from bananas.cli.main import cli
from bananas.embedded import free_port
from bananas.redis.connection import mask_secrets, mask_url

SECRET = "Pa55-word-xyz"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"redis://user:{SECRET}@db:6379/0", "redis://user:***@db:6379/0"),
        (f"rediss://:{SECRET}@db:6380", "rediss://:***@db:6380"),
        (f"unix://app:{SECRET}@/run/redis.sock", "unix://app:***@/run/redis.sock"),
        ("redis://user:p%40ss%3Aword@db/0", "redis://user:***@db/0"),
        (f"redis://db:6379/0?password={SECRET}&db=2", "redis://db:6379/0?password=***&db=2"),
        (f"rediss://db/0?ssl_ca_certs=/ca.pem&PASSWORD={SECRET}", "rediss://db/0?ssl_ca_certs=/ca.pem&PASSWORD=***"),
        ("redis://localhost:6379", "redis://localhost:6379"),
        ("redis://justauser@db:6379", "redis://justauser@db:6379"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_secrets_finds_the_password_in_any_form() -> None:
    url = "redis://user:p%40ss-Word9@db/0"
    text = "auth failed for p@ss-Word9 (p%40ss-Word9) at redis://user:p%40ss-Word9@db/0"
    masked = mask_secrets(text, url)
    assert "p@ss-Word9" not in masked and "p%40ss-Word9" not in masked
    assert mask_secrets(f"password={SECRET} rejected", f"redis://db/0?password={SECRET}") == "password=*** rejected"


def test_reprs_mask_the_password() -> None:
    url = f"redis://app:{SECRET}@127.0.0.1:1/0"
    for obj in (Client(url), AsyncClient(url), WorkerSettings(redis_url=url)):
        assert SECRET not in repr(obj) and SECRET not in str(obj)
        assert "app:***@127.0.0.1" in repr(obj)


def test_log_lines_and_tracebacks_are_masked() -> None:
    url = f"redis://app:{SECRET}@db:6379/0"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretMaskingFilter(url))
    log = logging.getLogger("bananas.test.masking")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        log.warning("connecting to %s", url)
        try:
            raise ConnectionError(f"could not reach {url} (password {SECRET})")
        except ConnectionError:
            log.exception("fetching jobs failed")
        log.error("with stack", stack_info=True, extra={"x": SECRET})
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert SECRET not in output
    assert "connecting to redis://app:***@db:6379/0" in output
    assert "Traceback (most recent call last)" in output and "could not reach redis://app:***@db" in output


def test_unreachable_server_errors_do_not_print_the_password() -> None:
    url = f"redis://app:{SECRET}@127.0.0.1:{free_port()}/0"
    done = bananas("submit", "task", "--payload", "{}", env=cli_env(url))
    assert done.returncode == 3 and "cannot reach Redis" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert SECRET not in done.stdout + done.stderr
    bad_scheme = CliRunner().invoke(cli, ["queues"], env={"REDIS_URL": f"http://app:{SECRET}@db:6379"})
    assert bad_scheme.exit_code == 2 and "REDIS_URL: 'http://app:***@db:6379' is not a Redis URL" in bad_scheme.stderr
    for command in (["queues"], ["submit", "task"], ["dlq", "list"], ["worker", "apps.basic:registry"]):
        flag = CliRunner().invoke(cli, [*command, "--redis-url", f"redis+sentinel://app:{SECRET}@db"])
        assert flag.exit_code == 2 and "--redis-url" in flag.stderr, (command, flag.output)
        assert SECRET not in flag.output


def test_worker_with_a_wrong_password_stops_at_start_with_one_masked_line(
    secure: SecureServer, tmp_path: Path
) -> None:
    """Issue 9, item 8: a wrong password will not mend itself: one line naming the
    problem, exit 3 (as the other commands), instead of warnings forever."""
    wrong = "Wr0ng-Worker-Pw"
    log = tmp_path / "worker.log"
    url = secure.url(password=wrong)
    with worker_process(log, env=cli_env(url, BANANAS_LOG_LEVEL="DEBUG")) as worker:
        assert worker.wait(20) == 3
    output = log.read_text()
    assert wrong not in output and "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("bananas: error:")]
    assert len(errors) == 1 and "Redis refused the credentials" in errors[0], output
    assert "consuming" not in output


def test_supervised_children_get_the_url_through_the_environment(secure: SecureServer, tmp_path: Path) -> None:
    """``--processes N`` children must not carry the password in their argv (``ps``)."""
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc to read other processes' command lines")
    log = tmp_path / "supervisor.log"
    with worker_process(log, "--processes", "2", env=cli_env(secure.url())) as supervisor:

        def children() -> list[str]:
            found = []
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    if stat.read_text().rsplit(")", 1)[1].split()[1] == str(supervisor.pid):
                        found.append((stat.parent / "cmdline").read_bytes().decode(errors="replace"))
                except (OSError, IndexError):
                    continue
            return found if len(found) == 2 else []

        argvs = wait_until(children, what="two worker children")
        own = Path(f"/proc/{supervisor.pid}/cmdline").read_bytes().decode(errors="replace")
        for argv in [own, *argvs]:
            assert "worker" in argv and secure.url() not in argv and "S3cret" not in argv
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
    assert "S3cret" not in log.read_text()
