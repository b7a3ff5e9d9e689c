"""The route table itself (no Redis): pattern kinds, order, validation, TOML files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from route_table_samples import GOOD_TABLE

from bananas import Priority, Route, Router, RouteTableError, ValidationError
from bananas.core.router import RuleKind


def key_of(router: Router, name: str, payload: Any = None) -> str | None:
    found = router.resolve(name, payload)
    return None if found is None else found.routing_key


# -- pattern kinds ----------------------------------------------------------------


def test_exact_name_matches_only_that_name() -> None:
    router = Router().route("send_email", "email")
    assert router.rules[0].kind is RuleKind.NAME
    assert key_of(router, "send_email") == "email"
    assert key_of(router, "send_email2") is None
    assert key_of(router, "Send_Email") is None


def test_glob_is_case_sensitive_and_star_crosses_dots() -> None:
    router = Router().route("image.*", "gpu").route("thumb_?", "small").route("[ab]_job", "ab")
    assert [rule.kind for rule in router] == [RuleKind.GLOB] * 3
    assert key_of(router, "image.resize") == "gpu"
    assert key_of(router, "image.resize.large") == "gpu"
    assert key_of(router, "IMAGE.resize") is None
    assert key_of(router, "image") is None
    assert key_of(router, "thumb_1") == "small"
    assert key_of(router, "thumb_12") is None
    assert key_of(router, "b_job") == "ab"


def test_regex_matches_at_the_start_like_celery() -> None:
    """Celery routes a regex with ``re.match``: anchored at the start only (issue 9, item 15)."""
    router = Router().route(re.compile(r"report\.(daily|weekly)"), "reports")
    assert router.rules[0].kind is RuleKind.REGEX
    assert key_of(router, "report.daily") == "reports"
    assert key_of(router, "report.daily.pdf") == "reports"  # re.match, not fullmatch
    assert key_of(router, "my_report.daily") is None  # anchored at the start, not search
    assert key_of(Router().route(re.compile(r"^mail_"), "email"), "mail_welcome") == "email"
    assert key_of(Router().route(re.compile(r"mail_"), "email"), "mail_welcome") == "email"
    whole = Router().route(re.compile(r"report\.daily$"), "r")
    assert key_of(whole, "report.daily") == "r"
    assert key_of(whole, "report.daily.pdf") is None
    assert key_of(Router().route(re.compile(r".*report.*"), "r"), "my_report.daily") == "r"


def test_exact_name_with_glob_characters_via_escaped_regex() -> None:
    router = Router().route(re.compile(re.escape("odd*name") + "$"), "odd")
    assert key_of(router, "odd*name") == "odd"
    assert key_of(router, "odd*name2") is None
    assert key_of(router, "odd_and_name") is None


def test_callable_gets_name_and_payload() -> None:
    seen: list[tuple[str, Any]] = []

    def by_tenant(name: str, payload: Any) -> str | None:
        seen.append((name, payload))
        return f"tenant_{payload['tenant']}" if isinstance(payload, dict) and "tenant" in payload else None

    router = Router().route(by_tenant, priority="low")
    rule = router.rules[0]
    assert rule.kind is RuleKind.CALLABLE and rule.routing_key is None
    assert "by_tenant" in rule.pattern
    found = router.resolve("invoice", {"tenant": "acme"})
    assert found == Route("tenant_acme", Priority.LOW, rule)  # a bare key takes the rule's priority
    assert router.resolve("invoice", {}) is None
    assert seen == [("invoice", {"tenant": "acme"}), ("invoice", {})]


def test_callable_may_return_key_and_priority() -> None:
    router = Router().route(lambda name, payload: ("urgent", "high") if payload else ("calm", None), priority="low")
    first = router.resolve("x", True)
    second = router.resolve("x", False)
    assert first is not None and (first.routing_key, first.priority) == ("urgent", Priority.HIGH)
    assert second is not None and (second.routing_key, second.priority) == ("calm", Priority.LOW)


# -- order ------------------------------------------------------------------------


def test_first_match_wins_in_the_order_added() -> None:
    router = (
        Router()
        .route("image.thumbnail", "cpu")
        .route("image.*", "gpu", "high")
        .route(re.compile(r"image\..+"), "never")
        .route(lambda name, payload: "never_either", None)
    )
    assert key_of(router, "image.thumbnail") == "cpu"
    found = router.resolve("image.resize")
    assert found is not None and found.routing_key == "gpu" and found.priority is Priority.HIGH
    assert found.rule.number == 2 and found.rule.describe() == "glob 'image.*'"
    assert key_of(router, "other") == "never_either"


def test_callable_returning_none_passes_to_later_rules() -> None:
    router = Router().route(lambda name, payload: None).route("job", "later")
    assert key_of(router, "job") == "later"


def test_callables_after_the_first_match_are_not_called() -> None:
    def boom(name: str, payload: Any) -> str:
        raise AssertionError("must not be called")

    router = Router().route("job", "first").route(boom)
    assert key_of(router, "job") == "first"
    assert router.resolver("job")({"any": 1}) is not None


def test_route_returns_the_router_for_chaining() -> None:
    router = Router()
    assert router.route("a", "k") is router
    assert len(router) == 1 and [rule.number for rule in router] == [1]


def test_bulk_resolver_agrees_with_resolve() -> None:
    router = (
        Router()
        .route(lambda name, payload: "big" if payload.get("n", 0) > 10 else None)
        .route("task", "tasks", "low")
        .route(lambda name, payload: "unreachable_for_task")
    )
    resolve = router.resolver("task")
    for payload in ({"n": 1}, {"n": 50}, {}):
        assert resolve(payload) == router.resolve("task", payload)
    assert router.resolver("other")({}) == router.resolve("other", {})


def test_no_rules_means_no_route() -> None:
    assert Router().resolve("anything") is None


# -- validation when a rule is added ----------------------------------------------


def test_invalid_routing_key_in_a_rule_names_the_rule() -> None:
    router = Router().route("ok", "fine")
    with pytest.raises(RouteTableError) as caught:
        router.route("image.*", "gpu:large")
    err = caught.value
    assert isinstance(err, ValidationError) and isinstance(err, ValueError)
    assert err.rule_number == 2 and err.pattern == "glob 'image.*'"
    assert "rule #2 (glob 'image.*')" in str(err) and "'gpu:large'" in str(err) and "':'" in str(err)
    assert len(router) == 1  # nothing added


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.route("job", "k", "urgent"), "unknown priority 'urgent'"),
        (lambda r: r.route("job"), "a routing_key is required"),
        (lambda r: r.route("job", ""), "must not be empty"),
        (lambda r: r.route("", "k"), "the pattern is empty"),
        (lambda r: r.route(lambda n, p: None, "k"), "a callable rule returns its routing key"),
        (lambda r: r.route(42, "k"), "not int"),
        (lambda r: r.route(re.compile(b"x"), "k"), "not bytes"),
    ],
)
def test_bad_rules_are_refused(call: Any, message: str) -> None:
    router = Router()
    with pytest.raises(RouteTableError, match=re.escape(message)) as caught:
        call(router)
    assert caught.value.rule_number == 1 and "rule #1" in str(caught.value)
    assert len(router) == 0


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("bad key", "returned a bad routing key for job 'job'"),
        (("k", "urgent"), "returned a bad priority for job 'job'"),
        (42, "returned 42 for job 'job'"),
        (("a", "b", "c"), "expected a routing key, a (routing_key, priority) tuple or None"),
        ("", "returned a bad routing key"),
    ],
)
def test_bad_answers_from_a_callable_name_the_rule(answer: Any, message: str) -> None:
    def pick(name: str, payload: Any) -> Any:
        return answer

    router = Router().route("other", "k").route(pick)
    with pytest.raises(RouteTableError, match=re.escape(message)) as caught:
        router.resolve("job", None)
    assert caught.value.rule_number == 2 and "pick" in str(caught.value)


def test_exceptions_from_a_callable_propagate() -> None:
    def broken(name: str, payload: Any) -> str:
        raise KeyError("tenant")

    with pytest.raises(KeyError):
        Router().route(broken).resolve("job", {})


# -- TOML files -------------------------------------------------------------------


def test_good_file(table_file: Path) -> None:
    router = Router.from_toml(table_file)
    assert router.source == str(table_file) and len(router) == 4
    assert [(r.number, r.kind.value, r.pattern) for r in router] == [
        (1, "name", "send_email"),
        (2, "glob", "image.*"),
        (3, "regex", r"report\.(daily|weekly)"),
        (4, "callable", "routing_rules:by_tenant"),
    ]
    assert [(r.routing_key, r.priority) for r in router] == [
        ("email", None),
        ("gpu", Priority.HIGH),
        ("reports", Priority.LOW),
        (None, None),
    ]
    assert key_of(router, "send_email") == "email"
    assert key_of(router, "image.crop") == "gpu"
    assert key_of(router, "report.weekly") == "reports"
    assert key_of(router, "invoice", {"tenant": "acme"}) == "tenant_acme"
    assert key_of(router, "invoice", {}) is None


def test_from_toml_string_and_empty_table() -> None:
    assert len(Router.from_toml_string(GOOD_TABLE)) == 4
    assert len(Router.from_toml_string("")) == 0
    assert len(Router.from_toml_string("# no rules yet\n")) == 0


def test_a_name_rule_in_a_file_is_exact_even_with_glob_characters() -> None:
    router = Router.from_toml_string('[[route]]\nname = "odd*name"\nrouting_key = "odd"\n')
    assert router.rules[0].kind is RuleKind.NAME
    assert key_of(router, "odd*name") == "odd" and key_of(router, "odd_x_name") is None


def test_invalid_routing_key_in_a_file_names_file_rule_and_pattern(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(
        '[[route]]\nname = "a"\nrouting_key = "ok"\n\n[[route]]\nglob = "image.*"\nrouting_key = "gpu.large"\n'
    )
    with pytest.raises(RouteTableError) as caught:
        Router.from_toml(path)
    err = caught.value
    assert err.source == str(path) and err.rule_number == 2 and err.pattern == "glob 'image.*'"
    assert str(err).startswith(f"route table {path}: rule #2 (glob 'image.*'): invalid routing key 'gpu.large'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[route]]\nname = "a"\nrouting_key = "k"\nqueue = "x"\n', "rule #1 (name 'a'): unknown key 'queue'"),
        ('[[route]]\nname = "a"\nglob = "b*"\nrouting_key = "k"\n', "exactly one of name, glob, regex, callable"),
        ('[[route]]\nrouting_key = "k"\n', "(found none)"),
        ('[[route]]\nname = "a"\n', "rule #1 (name 'a'): a routing_key is required"),
        ('[[route]]\nname = "a"\nrouting_key = "k"\npriority = "urgent"\n', "unknown priority 'urgent'"),
        ('[[route]]\nname = "a"\nrouting_key = 5\n', "routing_key must be a string, not int"),
        ('[[route]]\nglob = 5\nrouting_key = "k"\n', "glob must be a string, not int"),
        ('[[route]]\nregex = "("\nrouting_key = "k"\n', "not a valid regular expression"),
        ('[[route]]\ncallable = "routing_rules:by_tenant"\nrouting_key = "k"\n', "returns its routing key"),
        ('[[route]]\ncallable = "routing_rules"\n', "must be 'package.module:function'"),
        ('[[route]]\ncallable = "no_such_module_xyz:f"\n', "cannot import module 'no_such_module_xyz'"),
        ('[[route]]\ncallable = "routing_rules:missing"\n', "has no attribute 'missing'"),
        ('[[route]]\ncallable = "routing_rules:NOT_CALLABLE"\n', "is a int, not a callable"),
        ('[[routes]]\nname = "a"\nrouting_key = "k"\n', "unknown top-level key 'routes'"),
        ('route = "x"\n', "'route' must be an array of tables"),
        ("[[route]\n", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(RouteTableError, match=re.escape(message)) as caught:
        Router.from_toml_string(text, source="t.toml")
    assert str(caught.value).startswith("route table t.toml: ")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RouteTableError, match="cannot read the file"):
        Router.from_toml(tmp_path / "missing.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[[route]]\nname = "caf\xe9"\nrouting_key = "k"\n')
    with pytest.raises(RouteTableError, match="not UTF-8"):
        Router.from_toml(latin)
