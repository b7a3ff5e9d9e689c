"""Entry point of the ``bananas`` command."""

from __future__ import annotations

import click

from bananas.cli import cancel, demo, dlq, fleet, jobs, limits, reconcile, routes, scheduler, server, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bananas")
def cli() -> None:
    """Bananas: a distributed task queue on Redis with routed priority queues."""


cli.add_command(worker.worker)
cli.add_command(jobs.submit)
cli.add_command(fleet.queues)
cli.add_command(fleet.workers)
cli.add_command(fleet.running)
cli.add_command(fleet.pause)
cli.add_command(fleet.resume)
cli.add_command(fleet.purge)
cli.add_command(jobs.job)
cli.add_command(jobs.result)
cli.add_command(demo.demo)
cli.add_command(routes.routes)
cli.add_command(dlq.dlq)
cli.add_command(reconcile.reconcile_command)
cli.add_command(scheduler.scheduler)
cli.add_command(scheduler.schedules)
cli.add_command(limits.limits)
cli.add_command(server.server)
cli.add_command(cancel.cancel)


def main() -> None:
    cli(prog_name="bananas")
