"""The ``acw-sync`` command line: one group, one module per area."""

from __future__ import annotations

import click

from acw_sync import __version__
from acw_sync.cli import admin, demo, report, run, sandbox

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acw-sync")
def main() -> None:
    """acw-sync: automatic After Call Work from telephony webhooks to your CRM."""


for command in (
    *run.COMMANDS,
    *admin.COMMANDS,
    *sandbox.COMMANDS,
    *demo.COMMANDS,
    *report.COMMANDS,
):
    main.add_command(command)
