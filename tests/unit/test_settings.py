"""WorkerSettings.from_env: flags > environment > defaults; errors name the variable."""

from __future__ import annotations

import pytest

from bananas import ConfigurationError, Priority, WorkerSettings


def test_defaults() -> None:
    s = WorkerSettings.from_env({})
    assert s.redis_url == "redis://localhost:6379"
    assert s.routing_keys == ("default",)
    assert s.priorities == (Priority.HIGH, Priority.NORMAL, Priority.LOW)
    assert s.concurrency == 10
    assert s.max_retries == 3
    assert s.lease_seconds > 0


def test_environment_overrides_defaults() -> None:
    env = {
        "REDIS_URL": "redis://example:6390/2",
        "WORKER_ROUTING_KEYS": "gpu, email ,default",
        "WORKER_CONCURRENCY": "4",
        "WORKER_PRIORITIES": "low,high",
        "JOB_TIMEOUT": "12.5",
        "JOB_LEASE_SECONDS": "7",
        "MAX_RETRIES": "0",
    }
    s = WorkerSettings.from_env(env)
    assert s.redis_url == "redis://example:6390/2"
    assert s.routing_keys == ("gpu", "email", "default")
    assert s.concurrency == 4
    assert s.priorities == (Priority.LOW, Priority.HIGH)
    assert s.job_timeout == 12.5
    assert s.lease_seconds == 7.0
    assert s.max_retries == 0


def test_flags_override_environment() -> None:
    env = {"WORKER_ROUTING_KEYS": "gpu", "WORKER_CONCURRENCY": "4", "WORKER_PRIORITIES": "low"}
    s = WorkerSettings.from_env(env, routing_keys="email,default", concurrency="2", priorities=None)
    assert s.routing_keys == ("email", "default")
    assert s.concurrency == 2
    assert s.priorities == (Priority.LOW,)  # flag not given: env wins over default


def test_empty_environment_value_means_default() -> None:
    assert WorkerSettings.from_env({"WORKER_CONCURRENCY": " "}).concurrency == 10


def test_a_good_flag_hides_a_bad_environment_value() -> None:
    assert WorkerSettings.from_env({"WORKER_CONCURRENCY": "0"}, concurrency="3").concurrency == 3


@pytest.mark.parametrize(
    ("env", "variable", "detail"),
    [
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY", "at least 1"),
        ({"WORKER_CONCURRENCY": "ten"}, "WORKER_CONCURRENCY", "whole number"),
        ({"WORKER_PRIORITIES": "urgent"}, "WORKER_PRIORITIES", "urgent"),
        ({"WORKER_PRIORITIES": "high,high"}, "WORKER_PRIORITIES", "twice"),
        ({"WORKER_ROUTING_KEYS": "a b"}, "WORKER_ROUTING_KEYS", "'a b'"),
        ({"WORKER_ROUTING_KEYS": "gpu,gpu"}, "WORKER_ROUTING_KEYS", "twice"),
        ({"WORKER_ROUTING_KEYS": ","}, "WORKER_ROUTING_KEYS", "at least one"),
        ({"JOB_TIMEOUT": "-1"}, "JOB_TIMEOUT", "greater than 0"),
        ({"JOB_LEASE_SECONDS": "abc"}, "JOB_LEASE_SECONDS", "number"),
        ({"MAX_RETRIES": "-1"}, "MAX_RETRIES", "0 or more"),
        ({"REDIS_URL": "http://nope"}, "REDIS_URL", ""),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], variable: str, detail: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        WorkerSettings.from_env(env)
    assert str(info.value).startswith(f"{variable}: ")
    assert detail in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigurationError, match=r"^--concurrency: must be at least 1"):
        WorkerSettings.from_env({"WORKER_CONCURRENCY": "5"}, concurrency="0")
    with pytest.raises(ConfigurationError, match=r"^--routing-keys: .*'gpu/x'"):
        WorkerSettings.from_env({}, routing_keys="gpu/x")
