"""``dlprov export``: W3C PROV files and pictures, the twin of :func:`dlprov.prov.write`."""
from __future__ import annotations

import click

from dlprov.cli.options import dataflow_option
from dlprov.prov.export import FORMATS, PICTURE_FORMATS, check_format, format_of
from dlprov.store.store import Store


@click.command()
@dataflow_option
@click.option("--run", "-r", metavar="EXEC", help="Only this execution (its exec tag or id).")
@click.option("--model", "-m", metavar="MODEL",
              help="Only this model's derivation trace (its id, name or file path).")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS, case_sensitive=False),
              help="Output format (default: from the extension of -o, else json).")
@click.option("--output", "-o", type=click.Path(), metavar="FILE",
              help="Where to write (default: standard output, for text formats); neo4j-csv: "
                   "a folder, or a .zip file.")
@click.option("--max-nodes", default=150, show_default=True, type=click.IntRange(1),
              help="Pictures: summarise graphs larger than this.")
@click.option("--no-group", is_flag=True,
              help="Pictures: draw every element (each batch of otrainbatch, each epoch of "
                   "otrain) while the graph is small enough; by default the elements of one "
                   "set made by one task are one node.")
@click.pass_context
def export(ctx: click.Context, df_tag: str | None, run: str | None, model: str | None,
           fmt: str | None, output: str | None, max_nodes: int, no_group: bool) -> None:
    """Export provenance as W3C PROV: a whole dataflow (default), one execution (--run) or
    one model's derivation trace (--model), as PROV-N, PROV-JSON, PROV-XML, Turtle or TriG,
    or drawn as SVG, PNG or PDF; or for Neo4j, as a Cypher script of MERGE statements
    (cypher) or neo4j-admin import CSV files (neo4j-csv).

    \b
      dlprov export --run mnist-1 -o mnist-1.provn
      dlprov export --model mlp-adam --format json
      dlprov export --dataflow mnist -o mnist.svg
      dlprov export --dataflow mnist -o mnist.cypher
      dlprov export --dataflow mnist --format neo4j-csv -o mnist-neo4j/
    """
    from dlprov.prov.export import export as export_text
    from dlprov.prov.export import write

    if run is not None and model is not None:
        raise click.UsageError("give --run or --model, not both")
    fmt = check_format(fmt) if fmt else (format_of(output) if output else "json")
    if output is None:
        if fmt in PICTURE_FORMATS:
            raise click.UsageError(f"a {fmt} picture needs a file: give -o FILE.{fmt}")
        if fmt == "neo4j-csv":
            raise click.UsageError("neo4j-csv needs a place: give -o FOLDER or -o FILE.zip")
        from dlprov.prov.stream import streams, write_scope
        if streams(fmt):  # written as the records are made: no whole text in memory
            from dlprov.prov.scope import read_snapshot
            write_scope(read_snapshot(Store(ctx.obj), dataflow=df_tag, run=run, model=model),
                        fmt, click.get_text_stream("stdout").write)
            return
        click.echo(export_text(Store(ctx.obj), dataflow=df_tag, run=run, model=model,
                               format=fmt), nl=False)
        return
    path = write(output, Store(ctx.obj), dataflow=df_tag, run=run, model=model, format=fmt,
                 max_nodes=max_nodes, group=not no_group)
    click.echo(f"wrote {path}", err=True)
