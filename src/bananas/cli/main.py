"""Entry point of the ``bananas`` command.

Two things every command shares live here:

- Commands are imported when they run, not when ``bananas`` starts: ``bananas --help``
  imports click and nothing else (no redis-py), so it answers in a few tens of
  milliseconds. ``COMMANDS`` names each command's module and its one-line help (a test
  keeps that line equal to the command's own).
- Every error is one line on stderr: a bad value, an unknown option or a missing
  argument gives ``bananas: error: ...`` and exit 2, like the commands' own checks,
  instead of click's usage block.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from bananas.cli.project import import_from_project

#: name -> (module, attribute, one-line help shown by ``bananas --help``).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "cancel": (
        "bananas.cli.cancel", "cancel",
        "Cancel job JOB_ID: a waiting job never runs; a running one is asked to stop.",
    ),
    "demo": (
        "bananas.cli.demo", "demo",
        "Run an embedded server, three worker pools and a client; show who ran what.",
    ),
    "dlq": ("bananas.cli.dlq", "dlq", "Inspect and act on dead letters: jobs that failed for good."),
    "exporter": (
        "bananas.cli.exporter", "exporter",
        "Serve queue metrics (ready, oldest age, consumers, orphaned, paused, in flight, parked, scheduled, dead, "
        "workers) at /metrics, read from Redis on each scrape.",
    ),
    "job": ("bananas.cli.jobs", "job", "Print the record of job JOB_ID as JSON."),
    "limits": ("bananas.cli.limits", "limits", "Fleet-wide limits per routing key or job name (kept in Redis)."),
    "pause": (
        "bananas.cli.fleet", "pause",
        "Stop the whole fleet from starting jobs of ROUTING_KEY (or one priority of it).",
    ),
    "purge": (
        "bananas.cli.fleet", "purge",
        "Remove the jobs waiting on ROUTING_KEY (or one priority of it), parked ones included.",
    ),
    "queues": (
        "bananas.cli.fleet", "queues",
        "Problems first (jobs no worker listens for, paused keys, jobs no worker can run, dead letters), "
        "then ready jobs per routing key and priority, in flight, consumers.",
    ),
    "reconcile": (
        "bananas.cli.reconcile", "reconcile_command",
        "Find jobs whose bookkeeping is broken (a lease without owner or record, an id in two queues, "
        "a scheduled id without a record, an orphaned pending record) and put each back in exactly one place.",
    ),
    "running": (
        "bananas.cli.fleet", "running",
        "Jobs in flight now: which worker runs them, since when, until when their lease holds.",
    ),
    "result": (
        "bananas.cli.jobs", "result",
        "Print the result of job JOB_ID as JSON (exit 1 if it failed or has none yet).",
    ),
    "resume": (
        "bananas.cli.fleet", "resume", "Let workers take jobs of ROUTING_KEY (or that priority of it) again.",
    ),
    "routes": ("bananas.cli.routes", "routes", "Inspect route tables: which routing key a job gets from its name."),
    "scheduler": (
        "bananas.cli.scheduler", "scheduler",
        "Enqueue the periodic schedules of APP (module:attribute) and/or a schedule file.",
    ),
    "schedules": (
        "bananas.cli.scheduler", "schedules",
        "List periodic schedules: last run, next run, run count, last error.",
    ),
    "server": ("bananas.cli.server", "server", "Run an embedded Redis-compatible server on 127.0.0.1 until Ctrl-C."),
    "submit": ("bananas.cli.jobs", "submit", "Submit job NAME; prints its id."),
    "workflow": (
        "bananas.cli.workflow", "workflow",
        "Print workflow WORKFLOW_ID: its state, its result or error, and every step's status (exit 1 if it failed, "
        "or is unknown; with --wait, also if it is still running).",
    ),
    "workers": (
        "bananas.cli.fleet", "workers", "Live workers: where they listen, what they run, their load and counters.",
    ),
    "worker": (
        "bananas.cli.worker", "worker",
        "Run jobs from the routing keys' queues with the handlers in APP (module:attribute).",
    ),
}  # fmt: skip


class BananasGroup(click.Group):
    """The top-level group: lazy commands, one-line errors."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The help lines of lazy commands come from COMMANDS: listing them imports nothing.
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, _shorten(COMMANDS[name][2], limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(2)
        except click.ClickException as exc:
            _one_line(exc)
        except click.Abort:
            click.echo("bananas: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(exc: click.ClickException) -> NoReturn:
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see {ctx.command_path} --help)"
    click.echo(f"bananas: error: {message}", err=True)
    sys.exit(exc.exit_code)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "..."


@click.group(cls=BananasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bananas")
def cli() -> None:
    """Bananas: a distributed task queue on Redis with routed priority queues."""
    # One import rule for every command (APP, callable route rules): the project first.
    import_from_project()


def main() -> None:
    cli(prog_name="bananas")
