"""``dlprov validate``: W3C PROV-CONSTRAINTS validity of PROV files, or of what ``dlprov
export`` would write; the twin of :func:`dlprov.prov.constraints.validate` and
:func:`~dlprov.prov.constraints.files.validate_file`."""
from __future__ import annotations

import json

import click

from dlprov.cli.options import dataflow_option

_FORMATS = ("json", "xml", "ttl", "trig", "rdfxml", "provn", "jsonld")


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@dataflow_option
@click.option("--run", "-r", metavar="EXEC", help="Validate the export of this execution.")
@click.option("--model", "-m", metavar="MODEL", help="Validate this model's exported trace.")
@click.option("--input-format", "input_format", type=click.Choice(_FORMATS,
              case_sensitive=False), help="The files' format (default: from the suffix or the "
              "first bytes).")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="How to print the report.")
@click.option("--no-times", is_flag=True,
              help="Leave out the checks of the times events carry (the ordering of events "
                   "by their relations is still checked).")
@click.pass_context
def validate(ctx: click.Context, files: tuple[str, ...], df_tag: str | None, run: str | None,
             model: str | None, input_format: str | None, fmt: str, no_times: bool) -> None:
    """Check PROV documents against W3C PROV-CONSTRAINTS: uniqueness and keys, event
    ordering, typing, impossibility and disjointness. FILES are PROV-N, PROV-JSON, PROV-XML,
    Turtle or TriG; with no FILES, what `dlprov export` writes for the dataflow (--dataflow,
    default), one execution (--run) or a model's trace (--model). Each violation is listed
    with its constraint's number and name and the records involved. Exit 0 if every document
    is valid, 1 if one is not, 2 if a file cannot be read as PROV.

    \b
      dlprov validate trace.provn other.json
      dlprov validate --run mnist-1 --format json
    """
    from dlprov.errors import ProvImportError
    from dlprov.prov.constraints import validate as check
    from dlprov.prov.constraints.files import validate_file

    if files and (df_tag or run or model):
        raise click.UsageError("give FILES or --dataflow/--run/--model, not both")
    if run is not None and model is not None:
        raise click.UsageError("give --run or --model, not both")
    reports, unreadable = [], 0
    if files:
        for path in files:
            try:
                reports.append(validate_file(path, input_format, times=not no_times))
            except ProvImportError as exc:
                unreadable += 1
                click.echo(f"error: {path}: {exc}", err=True)
    else:
        from dlprov.prov.mapping import document
        from dlprov.store.store import Store
        scope = (f"run {run}" if run else f"model {model}" if model else
                 f"dataflow {df_tag}" if df_tag else "dataflow")
        doc = document(Store(ctx.obj), dataflow=df_tag, run=run, model=model)
        reports.append(check(doc, times=not no_times, source=f"export of {scope}"))
    if fmt == "json":
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2, default=str))
    else:
        for report in reports:
            click.echo(report.table())
    if unreadable:
        ctx.exit(2)
    if not all(r.valid for r in reports):
        ctx.exit(1)
