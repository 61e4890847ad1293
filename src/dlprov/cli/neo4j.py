"""``dlprov neo4j push``: merge provenance into a Neo4j server (twin of
:func:`dlprov.graph.push.push`)."""
from __future__ import annotations

import click

from dlprov.cli.graph import _document
from dlprov.cli.options import dataflow_option
from dlprov.graph.push import DEFAULT_URI


@click.group()
def neo4j() -> None:
    """Provenance in a Neo4j server (needs the extra: pip install 'dlprov[neo4j]')."""


@neo4j.command()
@dataflow_option
@click.option("--run", "-r", metavar="EXEC", help="Only this execution (tag or id).")
@click.option("--model", "-m", metavar="MODEL", help="Only this model's derivation trace.")
@click.option("--from", "source", metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="A PROV file (.json, .provn, .xml, .ttl, .trig) instead of the store.")
@click.option("--uri", envvar="NEO4J_URI", default=DEFAULT_URI, show_default=True,
              help="Bolt or neo4j URI ($NEO4J_URI).")
@click.option("--user", envvar="NEO4J_USERNAME", default="neo4j", show_default=True,
              help="User name ($NEO4J_USERNAME).")
@click.option("--password", envvar="NEO4J_PASSWORD", default="", help="($NEO4J_PASSWORD)")
@click.option("--database", envvar="NEO4J_DATABASE", default=None,
              help="Database (default: the server's default; $NEO4J_DATABASE).")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds to wait for the server.")
@click.pass_context
def push(ctx: click.Context, df_tag: str | None, run: str | None, model: str | None,
         source: str | None, uri: str, user: str, password: str, database: str | None,
         timeout: float) -> None:
    """Merge a dataflow's provenance (default), a run's, a model's trace or a PROV file into
    Neo4j: labels Entity/Activity/Agent, relationships named after the PROV relations,
    properties like `dlprov:loss`. Idempotent; nothing already there is deleted.

    \b
      NEO4J_PASSWORD=secret dlprov neo4j push --model mlp-adam
    """
    from dlprov.graph.push import push as push_document
    doc = _document(ctx, df_tag, run, model, source)
    report = push_document(doc, uri, user, password, database=database, timeout=timeout)
    click.echo(f"pushed {report.nodes} nodes and {report.relationships} relationships to {uri}: "
               f"{report.nodes_created} nodes and {report.relationships_created} relationships "
               "created")
