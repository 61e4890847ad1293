"""Options shared by several commands."""
from __future__ import annotations

import click

from dlprov.cli.output import FORMATS

format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                             show_default=True, help="Output format.")
dataflow_option = click.option("--dataflow", "-d", "df_tag", metavar="TAG",
                               help="Dataflow (df_tag); default: the only or most recent one.")
