"""What a result was measured on: machine, interpreters, packages, server, source tree."""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent

#: Distributions whose versions are recorded, when the interpreter has them.
PACKAGES = (
    "bananas", "redis", "hiredis", "orjson", "uvloop",
    "rq", "arq", "dramatiq", "saq", "taskiq", "taskiq-redis", "celery", "kombu", "huey",
)  # fmt: skip

_PROBE = r"""
import json, sys, platform
from importlib import metadata
out = {"python": platform.python_version(), "implementation": platform.python_implementation(),
       "executable": sys.executable, "packages": {}}
for name in json.loads(sys.argv[1]):
    try:
        out["packages"][name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def interpreter(python: str) -> dict[str, Any]:
    """Python version and package versions of another interpreter."""
    try:
        out = subprocess.run(
            [python, "-c", _PROBE, json.dumps(PACKAGES)], capture_output=True, text=True, timeout=60, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"executable": python, "error": str(exc)}


def server(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
    finally:
        client.close()
    name = info.get("server_name") or ("valkey" if "valkey_version" in info else "redis")
    version = info.get("valkey_version") or info.get("redis_version")
    return {"name": name, "version": version, "redis_compat_version": info.get("redis_version")}


#: Set (JSON: ref, commit, path) in a process re-executed on a snapshot of src/.
SNAPSHOT_ENV = "BENCH_BANANAS_SNAPSHOT"


def reexec_on_snapshot(ref: str, module: str, argv: Sequence[str] | None) -> None:
    """Run ``python -m module argv`` again with ``src/`` as of git ``ref`` first on
    PYTHONPATH (worker subprocesses inherit it), so a benchmark measures a fixed commit
    rather than a working tree others are editing. Read-only for git (``git archive``)."""
    if os.environ.get(SNAPSHOT_ENV):
        return
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    dest = Path(tempfile.gettempdir()) / f"bananas-src-{sha[:12]}"
    if not (dest / "src" / "bananas").is_dir():
        tmp = Path(tempfile.mkdtemp(prefix="bananas-src-"))
        archive = subprocess.run(["git", "archive", "--format=tar", sha, "src"], cwd=ROOT, capture_output=True,
                                 check=True).stdout  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(dest / "src"), env.get("PYTHONPATH")) if p)
    env[SNAPSHOT_ENV] = json.dumps({"ref": ref, "commit": sha[:7], "path": str(dest / "src")})
    args = list(sys.argv[1:] if argv is None else argv)
    print(f"benchmarks: re-running on src/ of {ref} ({sha[:7]}) from {dest / 'src'}", file=sys.stderr)
    os.chdir(ROOT)
    os.execve(sys.executable, [sys.executable, "-m", module, *args], env)


def source_tree() -> dict[str, Any]:
    snapshot = os.environ.get(SNAPSHOT_ENV)
    if snapshot:
        info = json.loads(snapshot)
        return {"commit": info["commit"], "ref": info["ref"], "dirty": False, "snapshot": True}

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "src"))}


def describe(pythons: dict[str, str]) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "interpreters": {role: interpreter(path) for role, path in pythons.items()},
        "source": source_tree(),
        "loadavg_start": loadavg(),
    }
