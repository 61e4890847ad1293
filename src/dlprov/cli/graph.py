"""``dlprov graph cypher``: Cypher over the provenance graph (twin of :func:`dlprov.graph.cypher`)."""
from __future__ import annotations

import sys

import click

from dlprov.cli.options import dataflow_option, format_option
from dlprov.cli.output import render
from dlprov.errors import QueryError


@click.group()
def graph() -> None:
    """The provenance graph in an embedded graph database (ladybug), queried with Cypher."""


@graph.command()
@click.argument("query")
@dataflow_option
@click.option("--run", "-r", metavar="EXEC", help="The graph of one execution (tag or id).")
@click.option("--model", "-m", metavar="MODEL", help="The graph of one model's trace.")
@click.option("--from", "source", metavar="FILE.json", type=click.Path(exists=True,
              dir_okay=False), help="The graph of a PROV-JSON file.")
@format_option
@click.pass_context
def cypher(ctx: click.Context, query: str, df_tag: str | None, run: str | None,
           model: str | None, source: str | None, fmt: str) -> None:
    """Run the Cypher QUERY (Neo4j's shortestPath, [*] and toFloat accepted) on the graph of a
    dataflow (cached in a private folder), a run, a model or a file. '-' reads standard input.

    The query only reads: one that writes the graph (SET, DELETE, CREATE, ...), touches files
    (LOAD FROM, COPY ... TO) or CALLs anything but a catalogue function is refused, and the
    graph is opened read-only."""
    from dlprov.graph import cypher as run_cypher
    if sum(x is not None for x in (run, model, source)) > 1:
        raise QueryError("give one of --run, --model, --from")
    if query == "-":
        query = sys.stdin.read()
    result = run_cypher(query, ctx.obj, dataflow=df_tag, run=run, model=model, source=source)
    click.echo(render(result.columns, result.rows, fmt))


@graph.command()
@dataflow_option
@click.option("--run", "-r", metavar="EXEC", help="The graph of one execution (tag or id).")
@click.option("--model", "-m", metavar="MODEL", help="The graph of one model's trace.")
@click.option("--from", "source", metavar="FILE.json", type=click.Path(exists=True,
              dir_okay=False), help="The graph of a PROV-JSON file.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="FILE.html (interactive, self-contained) or .svg/.png/.pdf.")
@click.option("--max-nodes", default=150, show_default=True, type=click.IntRange(1),
              help="Summarise graphs larger than this.")
@click.option("--no-group", is_flag=True,
              help="Draw every element (the epochs of otrain one by one) while small enough.")
@click.pass_context
def show(ctx: click.Context, df_tag: str | None, run: str | None, model: str | None,
         source: str | None, output: str, max_nodes: int, no_group: bool) -> None:
    """Draw the provenance graph of a dataflow, a run, a model's trace or a file: an
    interactive HTML page (pan, zoom, click for properties; no network needed) or a picture.

    \b
      dlprov graph show --model mlp-adam -o trace.html
      dlprov graph show --run mnist-1 -o mnist-1.svg
    """
    from pathlib import Path

    from dlprov.graph.page import write_html
    from dlprov.prov.picture import PICTURE_FORMATS, write_picture

    doc = _document(ctx, df_tag, run, model, source)
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix in ("html", "htm"):
        title = f"dlprov: {model or run or df_tag or source or 'provenance'}"
        path = write_html(doc, output, title=title,
                          max_nodes=max_nodes, group=not no_group)
    elif suffix in PICTURE_FORMATS:
        path = write_picture(doc, output, max_nodes=max_nodes, group=not no_group)
    else:
        raise click.UsageError("give -o FILE.html, .svg, .png or .pdf")
    click.echo(f"wrote {path}", err=True)


def _document(ctx: click.Context, df_tag: str | None, run: str | None, model: str | None,
              source: str | None):
    """The PROV document the scope options name (a file read by its extension)."""
    from dlprov.prov.export import read_document
    from dlprov.prov.mapping import document
    if sum(x is not None for x in (run, model, source)) > 1:
        raise QueryError("give one of --run, --model, --from")
    if source is not None:
        return read_document(source)
    return document(ctx.obj, dataflow=df_tag, run=run, model=model)
