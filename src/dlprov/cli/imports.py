"""``dlprov import FILE``, ``dlprov query external --model M`` and ``dlprov query linked``:
provenance recorded by other tools, and how it meets dlprov's.

Twins of :func:`dlprov.prov.imports.import_document`, :func:`dlprov.query.external_lineage`
and :func:`dlprov.query.linked_records`.
"""
from __future__ import annotations

import sys

import click

from dlprov.cli.options import dataflow_option, format_option
from dlprov.cli.output import render
from dlprov.store.store import Store

# The formats import_document reads (dlprov.prov.reading.FORMATS), listed here so that
# `dlprov --help` need not load prov, rdflib and lxml.
_FORMATS = ("json", "xml", "ttl", "trig", "rdfxml", "provn", "jsonld")


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--source", metavar="NAME",
              help="Whose provenance it is (default: the file's name without suffix).")
@click.option("--format", "fmt", type=click.Choice(_FORMATS, case_sensitive=False),
              help="The document's format (default: from the suffix or the first bytes).")
@click.option("--record-key", "record_keys", metavar="NAME", multiple=True,
              help="Local name of the attribute that names the record a node describes; "
                   "repeat for several, first found wins (default: record_id, recordId, "
                   "id_record, sha256, digest).")
@click.option("--record-id-from-name", is_flag=True,
              help="An entity with no such attribute names its record by its own local name.")
@click.option("--lenient", is_flag=True,
              help="Accept what the prov library reads only with a warning that it will "
                   "reject it.")
@click.option("--strict", is_flag=True,
              help="Refuse a document that breaks W3C PROV-CONSTRAINTS (default: store it "
                   "with a warning).")
@click.pass_context
def import_command(ctx: click.Context, file: str, source: str | None, fmt: str | None,
                   record_keys: tuple[str, ...], record_id_from_name: bool,
                   lenient: bool, strict: bool) -> None:
    """Import the PROV document FILE that another tool recorded (a data-preparation tracker,
    say): PROV-JSON, PROV-XML, PROV-N, Turtle, TriG, RDF/XML or PROV-JSONLD; '-' reads
    standard input. Importing the same bytes again stores nothing. Prints what was stored
    and how many of its records dlprov's elements name (attribute record_id). A document
    that breaks W3C PROV-CONSTRAINTS is stored with a warning, or refused with --strict."""
    from dlprov.prov.imports import DEFAULT_RECORD_KEYS, MAX_BYTES, import_document
    target = sys.stdin.buffer.read(MAX_BYTES + 1) if file == "-" else file
    report = import_document(target, store=Store(ctx.obj), source=source or
                             ("stdin" if file == "-" else None), format=fmt,
                             record_keys=record_keys or DEFAULT_RECORD_KEYS,
                             record_id_from_name=record_id_from_name, strict=not lenient,
                             constraints="strict" if strict else "warn")
    click.echo(report.summary())


@click.command("external")
@click.option("--model", "-m", metavar="MODEL", required=True,
              help="The model: its id, its name or the path of its file.")
@dataflow_option
@format_option
@click.option("--sql", "show_sql", is_flag=True,
              help="Print the SQL and its parameters instead of running it.")
@click.pass_context
def external(ctx: click.Context, model: str, df_tag: str | None, fmt: str,
             show_sql: bool) -> None:
    """The data preparation, recorded by another tool and imported with `dlprov import`, that
    made the data MODEL was trained on: the imported nodes naming records (record_id) that
    the model's trace used or produced (depth 0), then every node upstream of them along
    wasGeneratedBy, used, wasDerivedFrom and wasInformedBy."""
    from dlprov.query.external import external_lineage, prepare_external
    store = Store(ctx.obj)
    if show_sql:
        click.echo(str(prepare_external(model, store=store, dataflow=df_tag)))
        return
    result = external_lineage(model, store=store, dataflow=df_tag)
    click.echo(render(result.columns, result.rows, fmt))


@click.command("linked")
@click.option("--model", "-m", metavar="MODEL",
              help="Only the records upstream of this model (id, name or file path).")
@dataflow_option
@format_option
@click.pass_context
def linked(ctx: click.Context, model: str | None, df_tag: str | None, fmt: str) -> None:
    """dlprov elements whose record id (or file digest) an imported node names, with the task
    that used or produced each and the node; every dataflow's unless one is given."""
    from dlprov.query.external import linked_records
    result = linked_records(Store(ctx.obj), model=model, dataflow=df_tag)
    click.echo(render(result.columns, result.rows, fmt))
