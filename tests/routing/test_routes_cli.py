"""``bananas routes explain`` run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def bananas(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("bananas")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "bananas"]
    return subprocess.run([*argv, *args], env=env, capture_output=True, text=True, timeout=60)


def test_explain_names_the_matching_rule(routes_env: dict[str, str], table_file: Path) -> None:
    done = bananas(routes_env, "routes", "explain", "image.resize", "--routes", str(table_file))
    assert done.returncode == 0, done.stderr
    assert "rule #2 matched (glob 'image.*')" in done.stdout
    assert "routing key: gpu" in done.stdout and "priority: high" in done.stdout


def test_explain_without_a_match_says_default(routes_env: dict[str, str], table_file: Path) -> None:
    done = bananas(routes_env, "routes", "explain", "unknown_job", "--routes", str(table_file))
    assert done.returncode == 0, done.stderr
    assert "no rule matched" in done.stdout and "'default'" in done.stdout


def test_explain_passes_the_payload_to_callable_rules(routes_env: dict[str, str], table_file: Path) -> None:
    env = {**routes_env, "BANANAS_ROUTES": str(table_file)}  # the file from the environment
    done = bananas(env, "routes", "explain", "invoice", "--payload", '{"tenant": "acme"}', "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["matched"] is True and data["routing_key"] == "tenant_acme" and data["priority"] == "normal"
    assert data["rule"] == {"number": 4, "kind": "callable", "pattern": "routing_rules:by_tenant", "priority": None}
    plain = json.loads(bananas(env, "routes", "explain", "invoice", "--json").stdout)
    assert plain["matched"] is False and plain["routing_key"] == "default" and plain["rule"] is None


@pytest.mark.parametrize(
    ("table", "args", "message"),
    [
        (
            '[[route]]\nglob = "image.*"\nrouting_key = "gpu:1"\n',
            (),
            "rule #1 (glob 'image.*'): invalid routing key 'gpu:1'",
        ),
        ('[[route]]\nname = "a"\nrouting_key = "k"\nqueue = "q"\n', (), "unknown key 'queue'"),
        ("[[route]\n", (), "not valid TOML"),
        ('[[route]]\nname = "a"\nrouting_key = "k"\n', ("--payload", "{not json"), "--payload is not valid JSON"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    routes_env: dict[str, str], tmp_path: Path, table: str, args: tuple[str, ...], message: str
) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(table)
    done = bananas(routes_env, "routes", "explain", "image.x", "--routes", str(path), *args)
    assert done.returncode == 2
    assert done.stderr.startswith("bananas: error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_missing_table_is_one_line_exit_2(routes_env: dict[str, str], tmp_path: Path) -> None:
    done = bananas(routes_env, "routes", "explain", "x")
    assert done.returncode == 2 and "give --routes FILE or set BANANAS_ROUTES" in done.stderr
    done = bananas(routes_env, "routes", "explain", "x", "--routes", str(tmp_path / "nope.toml"))
    assert done.returncode == 2 and "cannot read the file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_every_command_imports_callable_rules_from_the_current_directory(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """``bananas submit`` loads a table with ``callable = "myapp:rule"`` from the project
    directory, exactly as ``bananas routes explain`` does (issue 9, item 14)."""
    import redis

    from bananas.redis import keys

    project = tmp_path / "project"
    project.mkdir()
    (project / "myapp_routing.py").write_text(
        "def by_tenant(name, payload):\n    return 'gpu' if name.startswith('image') else None\n"
    )
    table = project / "routes.toml"
    table.write_text('[[route]]\ncallable = "myapp_routing:by_tenant"\n')
    # No empty PYTHONPATH entry: that would put the current directory on sys.path anyway.
    pythonpath = os.pathsep.join(p for p in cli_env["PYTHONPATH"].split(os.pathsep) if p)
    env = {**cli_env, "BANANAS_ROUTES": str(table), "PYTHONPATH": pythonpath}
    script = Path(sys.executable).with_name("bananas")
    assert script.exists(), "the console script is what users run (no -m: nothing puts the cwd on sys.path)"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], env=env, cwd=project, capture_output=True, text=True, timeout=60)

    explained = run("routes", "explain", "image.resize")
    assert explained.returncode == 0, explained.stderr
    assert "routing key: gpu" in explained.stdout
    submitted = run("submit", "image.resize")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    r = redis.Redis.from_url(env["REDIS_URL"])
    try:
        assert r.lrange(keys.route_queue("gpu", "normal"), 0, -1) == [job_id.encode()]
    finally:
        r.close()
