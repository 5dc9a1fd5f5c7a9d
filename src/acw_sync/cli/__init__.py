"""The ``acw-sync`` command line: one group, one module per area."""

from __future__ import annotations

import click

from acw_sync import __version__
from acw_sync.cli import admin, demo, dlq, mapping, report, run, sandbox

__all__ = ["main"]


#: Commands that run the service: the whole config is validated before they start, so a
#: mistake stops the start-up with its message instead of failing the first call.
VALIDATE_CONFIG_FIRST = frozenset({"serve", "worker"})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acw-sync")
@click.pass_context
def main(ctx: click.Context) -> None:
    """acw-sync: automatic After Call Work from telephony webhooks to your CRM."""
    if ctx.invoked_subcommand in VALIDATE_CONFIG_FIRST and not ctx.resilient_parsing:
        admin.config_or_exit()


for command in (
    *run.COMMANDS,
    *admin.COMMANDS,
    *mapping.COMMANDS,
    *sandbox.COMMANDS,
    *demo.COMMANDS,
    *report.COMMANDS,
    *dlq.COMMANDS,
):
    main.add_command(command)
