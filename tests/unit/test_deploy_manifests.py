"""deploy/: the Kubernetes manifests are valid against the Kubernetes schemas (offline,
with the schemas kubernetes-validate ships), and every environment variable and flag the
manifests and the systemd unit use exists in bananas; shutdown grace is matched."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from bananas import Priority, WorkerSettings
from bananas.cli.main import cli
from bananas.redis import keys

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.31.0"
MANIFESTS = sorted((DEPLOY / "kubernetes").rglob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def help_text(command: str) -> str:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def known_env(command: str) -> set[str]:
    """Variables the command reads: those ``--help`` names, and the worker's settings."""
    names = set(re.findall(r"\$([A-Z][A-Z0-9_]+)", help_text(command)))
    if command == "worker":
        names |= set(WorkerSettings().to_env())
    return names


def check_command(argv: list[str], env: dict[str, str], where: str) -> None:
    assert Path(argv[0]).name == "bananas", f"{where}: runs {argv[0]!r}, not bananas"
    command = argv[1]
    assert f"\n  {command} " in help_text_root(), f"{where}: no command 'bananas {command}'"
    for arg in argv[2:]:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert re.search(rf"(^|\s){re.escape(flag)}[\s,]", help_text(command)), (
                f"{where}: 'bananas {command}' has no flag {flag}"
            )
    unknown = sorted(set(env) - known_env(command))
    assert not unknown, f"{where}: 'bananas {command}' reads no {unknown}"


@cache
def help_text_root() -> str:
    return CliRunner().invoke(cli, ["--help"]).output


def test_there_are_manifests():
    names = {p.name for p in MANIFESTS}
    assert {"worker-gpu.yaml", "worker-email.yaml", "exporter.yaml", "secret.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_is_valid_kubernetes(path: Path):
    for doc in documents(path):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked against the routed list keys below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    found.append((f"{path.name}:{doc['metadata']['name']}", doc, container))
    return found


@pytest.mark.parametrize("where,deployment,container", containers(), ids=lambda v: v if isinstance(v, str) else "")
def test_containers_use_existing_commands_flags_and_variables(where, deployment, container):
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    check_command(container["args"], env, where)
    if container["args"][1] == "worker":
        # Each pool is its own Deployment and its settings parse.
        settings = WorkerSettings.from_env({k: v for k, v in env.items() if k != "REDIS_URL"})
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > settings.shutdown_grace, f"{where}: SIGKILL before WORKER_SHUTDOWN_GRACE ends"
        assert settings.wait_replicas >= 1


def test_each_pool_autoscales_on_its_own_routing_key():
    pools: dict[str, str] = {}
    scalers: dict[str, list[str]] = {}
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] == "Deployment" and doc["spec"]["template"]["spec"]["containers"][0]["args"][1] == "worker":
                env = {e["name"]: e.get("value") for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
                pools[doc["metadata"]["name"]] = env["WORKER_ROUTING_KEYS"]
            if doc["kind"] == "HorizontalPodAutoscaler":
                metrics = doc["spec"]["metrics"]
                names = {m["external"]["metric"]["name"] for m in metrics}
                assert names == {"bananas_queue_ready_jobs", "bananas_queue_oldest_job_age_seconds"}
                keys_used = {m["external"]["metric"]["selector"]["matchLabels"]["routing_key"] for m in metrics}
                scalers.setdefault(doc["spec"]["scaleTargetRef"]["name"], []).extend(keys_used)
            if doc["kind"] == "ScaledObject":
                lists = [t["metadata"]["listName"] for t in doc["spec"]["triggers"]]
                target = doc["spec"]["scaleTargetRef"]["name"]
                scalers.setdefault(target + " (keda)", []).extend(lists)
    assert len(pools) >= 2, "one Deployment per pool"
    for deployment, routing_keys in pools.items():
        assert scalers.get(deployment) == [routing_keys], f"{deployment} is not scaled on {routing_keys}"
        keda = scalers.get(deployment + " (keda)")
        if keda is not None:
            assert sorted(keda) == sorted(keys.route_queue(routing_keys, p) for p in Priority)


def test_exporter_metrics_the_autoscalers_use_exist():
    source = (Path(keys.__file__).parents[1] / "metrics" / "queues.py").read_text()
    for name in ("bananas_queue_ready_jobs", "bananas_queue_oldest_job_age_seconds"):
        assert f'"{name}"' in source


def test_systemd_unit():
    unit = (DEPLOY / "systemd" / "bananas-worker@.service").read_text()
    values: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    env = dict(item.split("=", 1) for value in values["Environment"] for item in shlex.split(value))
    for env_file in ("common.env", "gpu.env"):
        for line in (DEPLOY / "systemd" / env_file).read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
    argv = shlex.split(values["ExecStart"][0])
    check_command(argv, env, "bananas-worker@.service")
    settings = WorkerSettings.from_env(env)
    assert int(values["TimeoutStopSec"][0]) > settings.shutdown_grace
    assert values["KillSignal"] == ["SIGTERM"]
