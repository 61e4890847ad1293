"""``dlprov diff A B``: how two models (or executions, or packages) differ; the twin of
:func:`dlprov.compare.diff`."""
from __future__ import annotations

import click

from dlprov.compare.rendering import FORMATS


@click.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--runs", is_flag=True, help="A and B are executions (exec tag or id), not models.")
@click.option("--all", "everything", is_flag=True, help="Show what is the same too.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Output format (html: one self-contained page).")
@click.option("--rtol", type=click.FloatRange(min=0), default=1e-6, show_default=True,
              help="Relative tolerance within which metrics agree.")
@click.option("--store-b", metavar="URL", help="Read B from this store (default: --store).")
@click.option("--dataflow", "-d", "df_tag", metavar="TAG",
              help="Dataflow of A and B (default: the one that has them).")
@click.option("--exit-code", is_flag=True, help="Exit 1 when A and B differ (as diff(1)).")
@click.pass_context
def diff(ctx: click.Context, a: str, b: str, runs: bool, everything: bool, fmt: str,
         rtol: float, store_b: str | None, df_tag: str | None, exit_code: bool) -> None:
    """What differs between A and B: hyperparameters, metrics, data (with the first step
    where the data parted), preparation, environment, code and the model. A and B are model
    ids, names or files, model packages (a.zip), or with --runs executions.

    \b
      dlprov diff mlp-adam mlp-sgd
      dlprov diff a.zip b.zip --format html > diff.html
      dlprov diff --runs digits-1 digits-2 --all
    """
    from dlprov.compare import diff as compare, render
    found = compare(a, b, store=ctx.obj, store_b=store_b, runs=runs, dataflow=df_tag, rtol=rtol)
    click.echo(render(found, fmt, everything=everything))
    if exit_code and not found["identical"]:
        ctx.exit(1)
