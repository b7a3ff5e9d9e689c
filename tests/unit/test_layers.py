"""The package's dependency direction: core <- redis <- client/results <- worker/scheduler <- metrics <- cli.

A module may import from its own layer or lower ones only, so the pure core never grows
I/O and the worker never reaches into the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "bananas"

LAYERS = {
    "errors": 0,
    "core": 0,
    "events": 0,
    "aio": 1,
    "redis": 1,
    "config": 1,
    "tracing": 1,
    "embedded": 1,
    "process": 1,
    "client": 2,
    "results": 2,
    "limits_admin": 2,
    "worker": 3,
    "scheduler": 3,
    "dlq": 3,
    "metrics": 4,
    "demo_app": 4,
    "cli": 5,
}


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bananas."):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("bananas.")]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0].removesuffix(".py") in LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    upward = [
        module
        for module in _imports(path)
        if LAYERS.get(module.split(".")[1], -1) > LAYERS[layer]
    ]
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {layer!r}) imports from a higher layer: {upward}"


def test_core_does_no_io() -> None:
    for path in (PACKAGE / "core").rglob("*.py"):
        text = path.read_text()
        for banned in ("import redis", "from redis", "import socket", "import asyncio"):
            assert banned not in text, f"{path.name} must stay I/O-free but has {banned!r}"


def test_every_module_is_in_a_layer() -> None:
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert tops - set(LAYERS) <= {"__init__", "__main__", "py"}, tops - set(LAYERS)
