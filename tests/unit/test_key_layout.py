"""The key layouts (redis/keys.py): the standalone names are the wire contract and do
not move; in the cluster layout every key of one job's transition shares its routing
key's slot, whatever braces a job name or id holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from redis.crc import key_slot

from bananas.core.job import new_job
from bananas.core.priority import Priority
from bananas.redis import calls, keys
from bananas.redis.keys import CLUSTER, STANDALONE, layout_for_url


def test_standalone_names_are_the_seed_contract() -> None:
    assert STANDALONE.queue("gpu", "high") == "bananas:route:gpu:queue:high"
    assert STANDALONE.legacy_queue(Priority.LOW) == "bananas:queue:low"
    assert STANDALONE.job("abc") == "bananas:job:abc"
    assert STANDALONE.result("abc") == "bananas:result:abc"
    assert STANDALONE.lease_keys("gpu") == (
        "bananas:leases",
        "bananas:lease:owners",
        "bananas:lease:routes",
        "bananas:limits:inflight",
    )
    assert STANDALONE.scheduled("gpu") == "bananas:queue:scheduled"
    assert STANDALONE.dead("gpu") == "bananas:queue:dead"
    assert STANDALONE.paused("gpu") == "bananas:paused"
    assert STANDALONE.parked_queue("gpu", "normal", "resize") == "bananas:route:gpu:queue:normal:job:resize"
    assert STANDALONE.notify_channel("gpu") == "bananas:route:gpu:notify"
    assert STANDALONE.known("gpu") == keys.ROUTING_KEYS
    assert STANDALONE.routing_key_of("gpu~x") is None
    assert STANDALONE.slot_groups(["a", "b", "a"]) == [("a", "b")]


def test_cluster_keys_carry_the_routing_key_as_hash_tag() -> None:
    assert CLUSTER.queue("gpu", "high") == "bananas:route:{gpu}:queue:high"
    job_id = CLUSTER.new_job_id("gpu")
    assert job_id.startswith("gpu~") and CLUSTER.routing_key_of(job_id) == "gpu"
    assert CLUSTER.job(job_id) == f"bananas:route:{{gpu}}:job:{job_id}"
    assert CLUSTER.slot_groups(["a", "b", "a"]) == [("a",), ("b",)]


def test_an_id_without_its_routing_key_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="carries no routing key") as info:
        CLUSTER.job("8f1c-no-route")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["plain", "{other}", "a}b{c", "{", "}{gpu2}"])
def test_braces_in_names_and_ids_cannot_pick_another_slot(name: str) -> None:
    slot = key_slot(b"gpu")
    job_id = f"gpu~{name}"
    job = new_job(name, {}, "high", "gpu", now=datetime.now(UTC), job_id=job_id)
    names = [
        CLUSTER.job(job_id), CLUSTER.result(job_id), CLUSTER.progress(job_id), CLUSTER.cancel_request(job_id),
        CLUSTER.parked_queue("gpu", "high", name), CLUSTER.job_rate("gpu", name), CLUSTER.unique_lock("gpu", name),
        CLUSTER.result_channel(job_id), CLUSTER.workflow(job_id),
    ]  # fmt: skip
    for call in (
        calls.ack(job_id, "t", b"{}", 60, layout=CLUSTER),
        calls.bury(job_id, "t", b"{}", 60, 10, layout=CLUSTER),
        calls.retry(job_id, "t", b"{}", 1.0, layout=CLUSTER),
        calls.park(job, "t", b"{}", layout=CLUSTER),
        calls.release(job, "t", b"{}", layout=CLUSTER),
        calls.submit(job, b"{}", layout=CLUSTER),
        calls.recover_to_ready(job, "t", 0, b"{}", layout=CLUSTER),
        calls.cancel(job, b"{}", b"{}", (), record_ttl=1, result_ttl=1, layout=CLUSTER),
        calls.finish(job_id, "t", b"{}", 60, "completed", unique_key=name, layout=CLUSTER),
    ):
        names += call.keys
    assert {key_slot(n.encode()) for n in names} == {slot}


def test_the_url_picks_the_layout() -> None:
    assert layout_for_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001") is CLUSTER
    assert layout_for_url("rediss+cluster://h:1") is CLUSTER
    for url in ("redis://h:1/0", "rediss://h", "unix:///tmp/r.sock", "redis+sentinel://h:26379/mymaster"):
        assert layout_for_url(url) is STANDALONE


def test_product_code_asks_its_layout() -> None:
    """The module-level names are the standalone layout's, kept for tests and tools:
    code under src/ that called them would ignore the cluster layout."""
    import pathlib
    import re

    import bananas

    root = pathlib.Path(bananas.__file__).parent
    banned = re.compile(
        r"\bkeys\.(job|result|route_queue|legacy_queue|queue|parked_queue|parked_index|route_notify_channel|"
        r"result_notify_channel|progress|progress_notify_channel|cancel_request|workflow|route_rate|job_rate|"
        r"unique_lock|SCHEDULED|DEAD|LEASES|LEASE_OWNERS|LEASE_ROUTES|ROUTE_INFLIGHT|PAUSED)\b"
    )
    offenders = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for path in root.rglob("*.py")
        if path.name != "keys.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if banned.search(line)
    ]
    assert offenders == [], "\n".join(offenders)
