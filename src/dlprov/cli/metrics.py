"""``dlprov metrics RUN``: a run's curves, the twin of :func:`dlprov.query.metrics.curves`."""
from __future__ import annotations

import click

from dlprov.cli.options import format_option
from dlprov.cli.output import render
from dlprov.store.store import Store


@click.command()
@click.argument("run")
@click.option("--set", "set_tag", default="otrain", show_default=True, metavar="SET",
              help="The set whose numbers to show, e.g. otrainbatch for per-batch metrics.")
@format_option
@click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png|svg",
              help="Also draw every metric against its order (epoch, step) into FILE.")
@click.pass_context
def metrics(ctx: click.Context, run: str, set_tag: str, fmt: str, plot: str | None) -> None:
    """Show the curves of execution RUN (its exec tag or id): every numeric metric of a set by
    step, batch or epoch (else in recording order). The table format gives a sparkline per
    metric; csv and json every point."""
    from dlprov.query.metrics import curves, plot as draw, summaries
    if plot is not None and not plot.lower().endswith((".png", ".svg")):
        raise click.BadParameter("the file must end in .png or .svg", param_hint="--plot")
    found = curves(run, set_tag, store=Store(ctx.obj))
    if fmt == "table":
        click.echo(f"run {found.run} · dataflow {found.dataflow} · set {found.set_tag} · "
                   f"{len(found.rows)} points by {found.order}")
        click.echo("\n".join(summaries(found)) or "(no metrics)")
    else:
        click.echo(render(found.columns, found.rows, fmt))
    if plot is not None:
        draw(found, plot)
        click.echo(f"plotted to {plot}", err=True)
