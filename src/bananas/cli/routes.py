"""``bananas routes``: inspect a route table (job name -> routing key and priority)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from bananas.cli.common import fail
from bananas.cli.project import import_from_project
from bananas.client.core import ROUTES_ENV
from bananas.core.router import Route, Router
from bananas.core.routing import DEFAULT_ROUTING_KEY
from bananas.errors import RouteTableError


@click.group()
def routes() -> None:
    """Inspect route tables: which routing key a job gets from its name."""


def _load(routes_file: str | None) -> Router:
    path = routes_file or os.environ.get(ROUTES_ENV, "").strip()
    if not path:
        fail(f"no route table: give --routes FILE or set {ROUTES_ENV}")
    # ``callable = "module:function"`` rules import from the project, as ``bananas worker`` does.
    import_from_project()
    try:
        return Router.from_toml(path)
    except RouteTableError as exc:
        fail(str(exc))


def _parse_payload(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        fail(f"--payload is not valid JSON: {exc}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON payloads")


@routes.command()
@click.argument("name")
@click.option("--payload", default=None, help="The job's payload as JSON (callable rules may look at it).")
@click.option("--routes", "routes_file", default=None, help=f"Route table TOML file (default: ${ROUTES_ENV}).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def explain(name: str, payload: str | None, routes_file: str | None, as_json: bool) -> None:
    """Show which rule routes job NAME, and the routing key and priority it gives."""
    router = _load(routes_file)
    value = _parse_payload(payload)
    try:
        found = router.resolve(name, value)
    except RouteTableError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(_as_dict(router, name, found), indent=2))
        return
    click.echo(f"route table: {router.source} ({len(router)} rules)")
    if found is None:
        click.echo(f"job {name!r}: no rule matched; routing key {DEFAULT_ROUTING_KEY!r} applies, priority normal")
        return
    rule = found.rule
    click.echo(f"job {name!r}: rule #{rule.number} matched ({rule.describe()})")
    click.echo(f"routing key: {found.routing_key}")
    if found.priority is None:
        click.echo("priority: normal (the rule sets none)")
    else:
        click.echo(f"priority: {found.priority.value}")
    click.echo("(a routing key or priority given when submitting wins over the table)")


def _as_dict(router: Router, name: str, found: Route | None) -> dict[str, Any]:
    data: dict[str, Any] = {"source": router.source, "name": name, "matched": found is not None}
    if found is None:
        data.update(routing_key=DEFAULT_ROUTING_KEY, priority="normal", rule=None)
        return data
    rule = found.rule
    data.update(
        routing_key=found.routing_key,
        priority=(found.priority.value if found.priority is not None else "normal"),
        rule={
            "number": rule.number,
            "kind": rule.kind.value,
            "pattern": rule.pattern,
            "priority": rule.priority.value if rule.priority is not None else None,
        },
    )
    return data
