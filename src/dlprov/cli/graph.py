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
    dataflow (cached next to the store), a run, a model or a file. '-' reads standard input."""
    from dlprov.graph import cypher as run_cypher
    if sum(x is not None for x in (run, model, source)) > 1:
        raise QueryError("give one of --run, --model, --from")
    if query == "-":
        query = sys.stdin.read()
    result = run_cypher(query, ctx.obj, dataflow=df_tag, run=run, model=model, source=source)
    click.echo(render(result.columns, result.rows, fmt))
