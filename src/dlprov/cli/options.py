"""Options shared by several commands."""
from __future__ import annotations

import click

from dlprov.cli.output import FORMATS, remember_wide

_format = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                       show_default=True, help="Output format.")
_wide = click.option("--wide", is_flag=True, expose_value=False, callback=remember_wide,
                     help="Tables: every column and whole values (default: fit the terminal, "
                          "$COLUMNS wide).")


def format_option(command):
    """``--format`` and ``--wide`` (kept for the renderer, not passed to ``command``)."""
    return _format(_wide(command))
dataflow_option = click.option("--dataflow", "-d", "df_tag", metavar="TAG",
                               help="Dataflow (df_tag); default: the only or most recent one.")
