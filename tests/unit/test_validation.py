"""Routing keys and priorities: the rules and the messages that explain them."""

from __future__ import annotations

import pytest

from bananas import InvalidPriorityError, InvalidRoutingKeyError, Priority, ValidationError, validate_routing_key
from bananas.core.routing import QueueRef, strict_queue_order

RULE = "1 to 64 characters of A-Z a-z 0-9 _ -"


@pytest.mark.parametrize("key", ["default", "gpu", "a", "A-Z_09", "x" * 64, "tenant-42_eu", "-", "_"])
def test_valid_routing_keys(key: str) -> None:
    assert validate_routing_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "must not be empty"),
        ("x" * 65, "65 characters long"),
        ("a b", "' '"),
        ("a/b", "'/'"),
        ("a.b", "'.'"),
        ("a{b}", "'{'"),
        ("a:b", "':'"),
        ("café", "'é'"),
        ("a\x00b", "'\\x00'"),
        (" gpu", "' '"),
        ("gpu\n", "'\\n'"),
    ],
)
def test_invalid_routing_keys_name_the_key_and_the_rule(key: str, reason: str) -> None:
    with pytest.raises(InvalidRoutingKeyError) as info:
        validate_routing_key(key)
    message = str(info.value)
    assert repr(key) in message
    assert reason in message
    assert RULE in message
    assert info.value.key == key
    assert isinstance(info.value, ValueError) and isinstance(info.value, ValidationError)


@pytest.mark.parametrize("key", [None, 42, b"gpu", ["gpu"]])
def test_non_string_routing_keys(key: object) -> None:
    with pytest.raises(InvalidRoutingKeyError, match=f"must be a string, not {type(key).__name__}"):
        validate_routing_key(key)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Priority.HIGH, Priority.HIGH),
        ("high", Priority.HIGH),
        ("NORMAL", Priority.NORMAL),
        (" Low ", Priority.LOW),
    ],
)
def test_priority_parse(value: object, expected: Priority) -> None:
    assert Priority.parse(value) is expected


@pytest.mark.parametrize("value", ["urgent", "", None, 1, "hi"])
def test_unknown_priority(value: object) -> None:
    with pytest.raises(InvalidPriorityError) as info:
        Priority.parse(value)
    assert repr(value) in str(info.value)
    assert "'high', 'normal', 'low'" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_priority_values() -> None:
    assert [p.value for p in Priority] == ["high", "normal", "low"]
    assert str(Priority.HIGH) == "high"


def test_strict_queue_order_with_legacy_after_default() -> None:
    order = strict_queue_order(["gpu", "default"], [Priority.HIGH, Priority.LOW])
    assert order == [
        QueueRef("gpu", Priority.HIGH),
        QueueRef("gpu", Priority.LOW),
        QueueRef("default", Priority.HIGH),
        QueueRef("default", Priority.HIGH, legacy=True),
        QueueRef("default", Priority.LOW),
        QueueRef("default", Priority.LOW, legacy=True),
    ]
