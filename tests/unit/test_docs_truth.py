"""The docs say what the program does (issue 9, item 20): flags that exist are not called
"variables only", newcomers are sent to ``bananas server``, examples work on a machine
without ``redis-cli``, and the embedded server's data directory is ignored by git."""

from __future__ import annotations

import re
from pathlib import Path

from bananas.cli.worker import worker

ROOT = Path(__file__).resolve().parents[2]


def test_routing_usage_names_the_flags_that_exist() -> None:
    text = (ROOT / "docs" / "TASK_ROUTING_USAGE.md").read_text()
    assert "variables only" not in text
    flags = {opt for param in worker.params for opt in getattr(param, "opts", ())}
    for flag in ("--queue-selection", "--max-wait", "--route-concurrency", "--job-types", "--mode"):
        assert flag in flags, f"bananas worker has no {flag}"
        assert f"`{flag}`" in text, f"docs/TASK_ROUTING_USAGE.md does not mention {flag}"


def test_quick_start_points_to_bananas_server() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start") :]
    quick_start = quick_start[: quick_start.index("\n## ", 1)]
    assert "bananas server" in quick_start
    assert "server_binary" not in readme, "README still gives a hand-made server recipe"


def test_examples_need_no_redis_cli() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "examples").rglob("*.md"))]:
        commands = re.findall(r"^\s*redis-cli .*$|`redis-cli [^`]*`", path.read_text(), re.MULTILINE)
        assert commands == [], f"{path.relative_to(ROOT)} tells users to run redis-cli: {commands[0]}"


def test_gitignore_has_the_server_data_dir() -> None:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert ".bananas-server/" in lines
    assert ".bananas-demo/" in lines


def test_readme_python_snippets_use_the_with_form() -> None:
    """Issue 9, item 16: the README's clients are closed by ``with`` / ``async with``."""
    readme = (ROOT / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    built = [line for s in snippets for line in s.splitlines() if re.search(r"\b(Async)?Client\(", line)]
    assert built, "no client in the README's Python snippets"
    for line in built:
        assert re.match(r"\s*(async )?with (Async)?Client\(", line), f"README builds a client without with: {line}"
