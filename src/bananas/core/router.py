"""Route tables: which routing key (and priority) a job gets from its name, Celery-style.

A ``Router`` holds rules, evaluated in the order they were added; the first that
matches decides. A rule's pattern is one of:

- an exact job name: a ``str`` without glob characters (``"send_email"``);
- a glob: a ``str`` with ``*``, ``?`` or ``[`` (``"image.*"``), matched with
  ``fnmatch.fnmatchcase`` (case-sensitive; ``*`` also matches dots);
- a regular expression: a compiled ``re.Pattern``, matched with ``re.match`` as Celery
  does: anchored at the start of the name only (``re.compile(r"report\\.")`` matches
  ``report.daily.pdf``); end it with ``$`` to require the whole name;
- a callable ``(name, payload) -> routing key | (routing key, priority) | None``;
  ``None`` means "no opinion", and evaluation goes on with the next rule.

The producer's explicit choice always wins over the table (see ``bananas.client``):
explicit routing key > matching rule > ``default``, and explicit priority > the
rule's priority > normal.

Rules are checked when they are added: an invalid routing key or priority raises
``RouteTableError`` naming the rule (its 1-based number and pattern). What a callable
returns can only be checked when it is called; a bad answer raises the same error.

Files: ``Router.from_toml(path)`` reads ``[[route]]`` tables, each with exactly one of
``name``, ``glob``, ``regex`` or ``callable`` (``"package.module:function"``), plus
``routing_key`` (not for ``callable``) and an optional ``priority``::

    [[route]]
    glob = "image.*"
    routing_key = "gpu"
    priority = "high"

Pure apart from ``from_toml`` (reads the file, imports the modules ``callable`` rules
name); reading ``BANANAS_ROUTES`` is left to the edges (the clients and the CLI).
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
import string
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

from bananas.core.priority import Priority
from bananas.core.routing import validate_routing_key
from bananas.errors import InvalidPriorityError, InvalidRoutingKeyError, RouteTableError

#: What a callable rule returns: a routing key, a (routing key, priority) pair, or None.
RouteDecision: TypeAlias = str | tuple[str, Priority | str | None] | None
RouteFunction: TypeAlias = Callable[[str, Any], RouteDecision]
RoutePattern: TypeAlias = str | re.Pattern[str] | RouteFunction

_GLOB_CHARACTERS = frozenset("*?[")
_PATTERN_FIELDS = ("name", "glob", "regex", "callable")
_RULE_FIELDS = frozenset({*_PATTERN_FIELDS, "routing_key", "priority"})


class RuleKind(StrEnum):
    NAME = "name"
    GLOB = "glob"
    REGEX = "regex"
    CALLABLE = "callable"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a route table. ``number`` counts from 1 in the order of the table."""

    number: int
    kind: RuleKind
    pattern: str
    """The pattern as text: the name, the glob, the regex source, or the callable's name."""
    routing_key: str | None
    """``None`` only for callable rules, which return their own."""
    priority: Priority | None
    """``None``: the rule sets no priority (the call's, else normal, applies)."""
    target: str | re.Pattern[str] | RouteFunction

    def describe(self) -> str:
        """``glob 'image.*'``, ``callable myapp.routing:pick_queue``..."""
        return _describe(self.kind, self.pattern)

    def matches(self, name: str) -> bool:
        """Whether this name-based rule matches ``name`` (callable rules: see ``decide``)."""
        target = self.target
        if self.kind is RuleKind.NAME:
            return name == target
        if self.kind is RuleKind.GLOB:
            assert isinstance(target, str)
            return fnmatch.fnmatchcase(name, target)
        if self.kind is RuleKind.REGEX:
            assert isinstance(target, re.Pattern)
            return target.match(name) is not None
        return False

    def decide(self, name: str, payload: Any, source: str | None = None) -> Route | None:
        """Ask a callable rule; validate its answer. Exceptions it raises propagate."""
        assert callable(self.target)
        answer = self.target(name, payload)
        if answer is None:
            return None
        priority: object = None
        if isinstance(answer, str):
            key: object = answer
        elif isinstance(answer, tuple) and len(answer) == 2:
            key, priority = answer
        else:
            raise self.error(
                f"returned {answer!r} for job {name!r}; expected a routing key, "
                "a (routing_key, priority) tuple or None",
                source,
            )
        try:
            routing_key = validate_routing_key(key)
        except InvalidRoutingKeyError as exc:
            raise self.error(f"returned a bad routing key for job {name!r}: {exc}", source) from None
        try:
            chosen = self.priority if priority is None else Priority.parse(priority)
        except InvalidPriorityError as exc:
            raise self.error(f"returned a bad priority for job {name!r}: {exc}", source) from None
        return Route(routing_key, chosen, self)

    def error(self, reason: str, source: str | None = None) -> RouteTableError:
        return RouteTableError(reason, rule_number=self.number, pattern=self.describe(), source=source)


@dataclass(frozen=True, slots=True)
class Route:
    """The outcome of a match: the routing key and priority the rule gives."""

    routing_key: str
    priority: Priority | None
    rule: Rule


class Router:
    """An ordered route table: the first matching rule gives the routing key.

    >>> router = Router().route("send_email", "email").route("image.*", "gpu", Priority.HIGH)
    >>> router.resolve("image.resize").routing_key
    'gpu'

    ``source`` names where the rules came from (a file path) in error messages.
    """

    __slots__ = ("_rules", "source")

    def __init__(self, *, source: str | None = None) -> None:
        # A tuple replaced on each ``route``: readers always see a consistent table.
        self._rules: tuple[Rule, ...] = ()
        self.source = source

    def route(
        self,
        pattern: RoutePattern,
        routing_key: str | None = None,
        priority: Priority | str | None = None,
    ) -> Router:
        """Add a rule at the end of the table and return the router, so calls chain.

        ``pattern``: an exact name (``str``), a glob (``str`` with ``*``, ``?`` or ``[``),
        a compiled regular expression (``re.match``: anchored at the start only, as in
        Celery), or a callable ``(name, payload)``.
        A callable returns its own routing key, so ``routing_key`` is then not given;
        ``priority`` is the callable's default when it returns a bare routing key.
        An exact name that contains glob characters: ``re.compile(re.escape(name) + "$")``.
        """
        number = len(self._rules) + 1
        if isinstance(pattern, re.Pattern):
            if not isinstance(pattern.pattern, str):
                raise RouteTableError(
                    "a regular expression must be a str pattern, not bytes", rule_number=number, source=self.source
                )
            return self._add(RuleKind.REGEX, pattern, pattern.pattern, routing_key, priority)
        if isinstance(pattern, str):
            kind = RuleKind.GLOB if _GLOB_CHARACTERS.intersection(pattern) else RuleKind.NAME
            return self._add(kind, pattern, pattern, routing_key, priority)
        if callable(pattern):
            return self._add(RuleKind.CALLABLE, pattern, _callable_name(pattern), routing_key, priority)
        raise RouteTableError(
            f"a pattern is a job name, a glob, a compiled regular expression or a callable, "
            f"not {type(pattern).__name__}",
            rule_number=number,
            source=self.source,
        )

    def _add(
        self,
        kind: RuleKind,
        target: str | re.Pattern[str] | RouteFunction,
        text: str,
        routing_key: object,
        priority: object,
    ) -> Router:
        number = len(self._rules) + 1
        label = _describe(kind, text)

        def error(reason: str) -> RouteTableError:
            return RouteTableError(reason, rule_number=number, pattern=label, source=self.source)

        if kind is not RuleKind.CALLABLE and text == "":
            raise error("the pattern is empty")
        if kind is RuleKind.CALLABLE:
            if routing_key is not None:
                raise error("a callable rule returns its routing key; do not give one")
            key: str | None = None
        else:
            if routing_key is None:
                raise error("a routing_key is required")
            try:
                key = validate_routing_key(routing_key)
            except InvalidRoutingKeyError as exc:
                raise error(str(exc)) from None
        try:
            prio = None if priority is None else Priority.parse(priority)
        except InvalidPriorityError as exc:
            raise error(str(exc)) from None
        self._rules = (*self._rules, Rule(number, kind, text, key, prio, target))
        return self

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __repr__(self) -> str:
        where = f", source={self.source!r}" if self.source else ""
        return f"<Router {len(self._rules)} rules{where}>"

    def resolve(self, name: str, payload: Any = None) -> Route | None:
        """The first matching rule's route for this job, or ``None`` (no rule matched)."""
        return self.resolver(name)(payload)

    def resolver(self, name: str) -> Callable[[Any], Route | None]:
        """Route for many payloads of one job name (bulk submission).

        Name-based rules are evaluated once; only the callable rules placed before the
        first matching name-based rule are asked per payload. The result is the same as
        evaluating every rule in order for each payload.
        """
        if not isinstance(name, str):
            return _no_route  # not a job name: job validation rejects it, not the table
        asked: list[Rule] = []
        fixed: Route | None = None
        for rule in self._rules:
            if rule.kind is RuleKind.CALLABLE:
                asked.append(rule)
            elif rule.matches(name):
                assert rule.routing_key is not None
                fixed = Route(rule.routing_key, rule.priority, rule)
                break
        if not asked:
            return lambda _payload: fixed
        source = self.source

        def resolve(payload: Any) -> Route | None:
            for rule in asked:
                found = rule.decide(name, payload, source)
                if found is not None:
                    return found
            return fixed

        return resolve

    # -- files --------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Router:
        """Read a route table file (``[[route]]`` tables, see the module docstring)."""
        source = os.fspath(path)
        try:
            with open(source, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            raise RouteTableError(f"cannot read the file: {exc.strerror or exc}", source=source) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RouteTableError("the file is not UTF-8 text", source=source) from None
        return cls.from_toml_string(text, source=source)

    @classmethod
    def from_toml_string(cls, text: str, *, source: str = "<string>") -> Router:
        """Parse route table TOML text; ``source`` names it in error messages."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RouteTableError(f"not valid TOML: {exc}", source=source) from None
        unknown = sorted(set(data) - {"route"})
        if unknown:
            raise RouteTableError(
                f"unknown top-level key {unknown[0]!r}: a route table holds only [[route]] tables", source=source
            )
        entries = data.get("route", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise RouteTableError("'route' must be an array of tables, written [[route]]", source=source)
        router = cls(source=source)
        for number, entry in enumerate(entries, start=1):
            router._add_entry(number, entry)
        return router

    # -- Celery ---------------------------------------------------------------------

    @classmethod
    def from_celery(cls, task_routes: Any, *, source: str = "task_routes") -> Router:
        """A route table from Celery's ``task_routes`` setting, as it is.

        ``task_routes`` is a dict, or a list (or tuple) of dicts or of lists of
        ``(pattern, route)`` pairs (Celery's ordered form), mapping a task name,
        a glob or a compiled regular expression to ``{"queue": name, ...}`` or to a
        plain queue name. Celery's queue becomes the routing key; its other route
        options (exchange, routing_key, priority...) have no meaning here and are
        ignored. Matching follows Celery exactly (``celery.app.routes.MapRoute``):
        dicts are asked in order; within one, an exact task name wins over every
        pattern, then patterns in the order written; a ``*`` glob matches like Celery's
        (``*`` is one or more characters, anchored at the start only) and a regular
        expression is applied with ``re.match`` (anchored at the start only). Only ``*``
        makes a glob: ``?`` and ``[`` are plain characters of a task name, as in Celery.
        Router classes and functions named in ``task_routes`` are refused (name them
        with ``Router.route(callable)`` instead).
        """
        router = cls(source=source)
        tables = [task_routes] if isinstance(task_routes, dict) else task_routes
        if isinstance(tables, str | bytes) or not isinstance(tables, list | tuple):
            raise RouteTableError(
                f"task_routes must be a dict or a list of dicts, not {type(task_routes).__name__}", source=source
            )
        for position, table in enumerate(tables):
            if isinstance(table, dict):
                pairs = list(table.items())
            elif isinstance(table, list | tuple) and all(isinstance(p, list | tuple) and len(p) == 2 for p in table):
                pairs = [(p[0], p[1]) for p in table]  # Celery's ([(pattern, route), ...],) form
            else:
                what = "a router name" if isinstance(table, str) else type(table).__name__
                raise RouteTableError(
                    f"task_routes[{position}] is {what}: only dicts (or lists of (pattern, route) pairs) "
                    "are supported; add router functions with Router.route(callable)",
                    source=source,
                )
            exact: list[tuple[str, object]] = []
            patterns: list[tuple[str | re.Pattern[str], object]] = []
            for key, value in pairs:
                if isinstance(key, re.Pattern):
                    patterns.append((key, value))
                elif isinstance(key, str):
                    (patterns if "*" in key else exact).append((key, value))
                else:
                    raise RouteTableError(
                        f"a task_routes key is a task name, a glob or a compiled regex, not {type(key).__name__}",
                        source=source,
                    )
            for name, value in exact:
                router._add(RuleKind.NAME, name, name, _celery_queue(name, value, source), None)
            for pattern, value in patterns:
                queue = _celery_queue(pattern if isinstance(pattern, str) else pattern.pattern, value, source)
                if isinstance(pattern, str):
                    compiled = re.compile(_celery_glob_to_re(pattern))
                    router._add(RuleKind.REGEX, compiled, compiled.pattern, queue, None)
                else:
                    router.route(pattern, queue)
        return router

    def _add_entry(self, number: int, entry: dict[str, Any]) -> None:
        kinds = [field for field in _PATTERN_FIELDS if field in entry]
        label = _describe(RuleKind(kinds[0]), entry[kinds[0]]) if len(kinds) == 1 else None

        def error(reason: str) -> RouteTableError:
            return RouteTableError(reason, rule_number=number, pattern=label, source=self.source)

        unknown = sorted(set(entry) - _RULE_FIELDS)
        if unknown:
            raise error(f"unknown key {unknown[0]!r} (a rule has name, glob, regex or callable, routing_key, priority)")
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise error(f"give exactly one of name, glob, regex, callable (found {found})")
        kind = RuleKind(kinds[0])
        value = entry[kind.value]
        if not isinstance(value, str):
            raise error(f"{kind.value} must be a string, not {type(value).__name__}")
        for field in ("routing_key", "priority"):
            if field in entry and not isinstance(entry[field], str):
                raise error(f"{field} must be a string, not {type(entry[field]).__name__}")
        target: str | re.Pattern[str] | RouteFunction = value
        if kind is RuleKind.REGEX:
            try:
                target = re.compile(value)
            except re.error as exc:
                raise error(f"not a valid regular expression: {exc}") from None
        elif kind is RuleKind.CALLABLE:
            target = _import_callable(value, error)
        self._add(kind, target, value, entry.get("routing_key"), entry.get("priority"))


def _describe(kind: RuleKind, pattern: object) -> str:
    if kind is RuleKind.CALLABLE:
        return f"callable {pattern}"
    if kind is RuleKind.REGEX and isinstance(pattern, str):
        return f"regex '{pattern}'"  # as written: repr would double every backslash
    return f"{kind.value} {pattern!r}"


def _no_route(_payload: Any) -> Route | None:
    return None


def _callable_name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    if name is None:
        return repr(function)
    return f"{module}:{name}" if module else name


def _import_callable(spec: str, error: Callable[[str], RouteTableError]) -> RouteFunction:
    """``package.module:function`` -> the function (the file's only way to name code)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise error("callable must be 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # any failure while importing user code is a bad table entry
        raise error(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise error(f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise error(f"{spec} is a {type(target).__name__}, not a callable")
    function: RouteFunction = target
    return function


def _celery_glob_to_re(glob: str) -> str:
    """Celery's ``glob_to_re``: punctuation but ``*`` escaped, ``*`` -> ``.+?``."""
    quote = set(string.punctuation) - {"*"}
    return "".join("\\" + c if c in quote else c for c in glob).replace("*", ".+?")


def _celery_queue(pattern: object, value: object, source: str) -> str:
    """The queue of one Celery route: ``{"queue": name, ...}`` or a plain name."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        queue = value.get("queue")
        if isinstance(queue, str) and queue:
            return queue
        if isinstance(queue, dict) and isinstance(queue.get("name"), str):
            return str(queue["name"])
        raise RouteTableError(f"the route of {pattern!r} has no 'queue' (got {value!r})", source=source)
    raise RouteTableError(
        f"the route of {pattern!r} must be {{'queue': name}} or a queue name, not {type(value).__name__}",
        source=source,
    )
