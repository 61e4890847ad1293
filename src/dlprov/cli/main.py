"""The ``dlprov`` command line: thin commands over the library (each has a Python twin)."""
from __future__ import annotations

import os
import sqlite3
import sys

import click
from sqlalchemy.exc import SQLAlchemyError

from dlprov import __version__
from dlprov.cli.lazy import LazyGroup
from dlprov.cli.options import dataflow_option, format_option
from dlprov.cli.output import render, render_records
from dlprov.errors import DlprovError, StoreUnavailable
from dlprov.query.guard import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, TIMEOUT_ENV
from dlprov.store.engine import resolve_store_url
from dlprov.store import failures
from dlprov.store.store import Store


class _Group(LazyGroup):
    """Turns dlprov's own errors, and the database's or the system's while a store is used
    (damaged, locked, read-only, unreachable), into one line and exit code 1, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # `dlprov sql … | head`: the reader has what it wanted
            _silence_stdout()
            ctx.exit(1)
        except (DlprovError, SQLAlchemyError, sqlite3.Error, OSError) as exc:
            click.echo(f"error: {_one_line_error(exc, ctx.obj)}", err=True)
            ctx.exit(1)


def _silence_stdout() -> None:
    # As Python's docs advise for SIGPIPE: point stdout at devnull so the flush at exit is quiet.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (a test runner)
        pass


def _one_line_error(exc: BaseException, store: str | None) -> str:
    """The message of ``exc``: a store failure (also one wrapped by StoreUnavailable) says
    which store and what to do (see :mod:`dlprov.store.failures`)."""
    cause = exc.__cause__ if isinstance(exc, StoreUnavailable) else exc
    try:
        named = failures.display_name(resolve_store_url(store))
    except DlprovError:
        named = store
    if cause is None:
        return failures.one_line(exc)
    return failures.one_line(failures.describe(cause, named) or str(exc))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", "-s", metavar="URL", envvar="DLPROV_STORE",
              help="Store URL or SQLite path (default: $DLPROV_STORE or ./dlprov.db).")
@click.version_option(__version__, prog_name="dlprov")
@click.pass_context
def cli(ctx: click.Context, store: str | None) -> None:
    """Provenance of deep-learning workflows: capture, store, query (W3C PROV-Df)."""
    ctx.obj = store


def _store(ctx: click.Context) -> Store:
    return Store(ctx.obj)


@cli.command()
@click.option("--dataflow", "-d", "df_tag", metavar="TAG",
              help="Only the runs of this dataflow (default: the runs of every dataflow).")
@click.option("--where", "-w", "where", multiple=True, metavar="EXPR",
              help="Keep the runs where EXPR holds: COLUMN OP VALUE, OP one of = != < <= > >= "
                   "~ (contains), e.g. learning_rate=0.001, otest.accuracy:best>0.9, "
                   "status=failed, tag.team=vision. Repeat to require several.")
@click.option("--sort", metavar="COLUMN[:desc]",
              help="Sort by COLUMN, ascending or with :desc descending (runs without the "
                   "value last; default: newest first).")
@click.option("--columns", "-c", multiple=True, metavar="COL,...",
              help="The columns to show (comma-separated or repeated; 'all': every one). "
                   "Default: a compact set in a table, every column in csv and json.")
@click.option("--limit", "-n", type=click.IntRange(1), metavar="N", help="At most N runs.")
@format_option
@click.pass_context
def runs(ctx: click.Context, df_tag: str | None, where: tuple[str, ...], sort: str | None,
         columns: tuple[str, ...], limit: int | None, fmt: str) -> None:
    """List executions (df_exec), newest first: status, duration, tags, hyperparameters (the
    training's input sets: itrain.NAME) and metrics (otrain.NAME:last|best|mean, likewise
    otest). A bare NAME stands for the hyperparameter, else the otest then otrain metric
    (:last). See docs/runs.md."""
    from dlprov.query.runs import display_value, runs_table, select_runs, shown_columns
    table = runs_table(_store(ctx), df_tag)
    shown = shown_columns(table, columns, everything=fmt != "table")
    rows = select_runs(table, where, sort, limit)
    if fmt != "json":
        rows = [{c: display_value(row.get(c)) for c in shown} for row in rows]
    click.echo(render_records(rows, shown, fmt))


@cli.command()
@click.argument("run")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.pass_context
def tag(ctx: click.Context, run: str, pairs: tuple[str, ...]) -> None:
    """Tag execution RUN (its exec tag or id): KEY=VALUE sets a tag, KEY= removes it."""
    from dlprov.capture.annotate import tag_run
    tags: dict[str, str | None] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="KEY=VALUE")
        tags[key] = value or None
    exec_tag = tag_run(run, tags, store=_store(ctx))
    click.echo(f"tagged {exec_tag}: " + ", ".join(
        f"{k}={v}" if v is not None else f"{k} removed" for k, v in tags.items()))


@cli.command()
@click.argument("run")
@click.argument("text")
@click.option("--append", "-a", is_flag=True, help="Add TEXT as a new line of the notes.")
@click.pass_context
def note(ctx: click.Context, run: str, text: str, append: bool) -> None:
    """Set the notes of execution RUN (its exec tag or id) to TEXT ('-': standard input)."""
    from dlprov.capture.annotate import note_run
    if text == "-":
        text = sys.stdin.read()
    exec_tag = note_run(run, text, append=append, store=_store(ctx))
    click.echo(f"noted {exec_tag}")


@cli.command()
@click.argument("run")
@format_option
@click.pass_context
def tasks(ctx: click.Context, run: str, fmt: str) -> None:
    """List the tasks of execution RUN (its exec tag or id)."""
    from dlprov.query.catalogue import list_tasks
    rows = list_tasks(run, _store(ctx))
    click.echo(render_records(rows, ["id", "identifier", "transformation", "status",
                                     "duration_s", "depends_on", "computing_resource", "rank",
                                     "error", "warnings"],
                              fmt))


@cli.command()
@click.argument("statement")
@dataflow_option
@format_option
@click.option("--timeout", type=click.FloatRange(0), metavar="SECONDS", envvar=TIMEOUT_ENV,
              help=f"Stop the statement after SECONDS (default: ${TIMEOUT_ENV} or "
                   f"{DEFAULT_TIMEOUT_S:g}; 0: no limit).")
@click.option("--max-rows", type=click.IntRange(0), default=DEFAULT_MAX_ROWS, show_default=True,
              metavar="N", help="Refuse a result of more than N rows (0: no limit).")
@click.option("--read-url", metavar="URL", envvar="DLPROV_READ_URL",
              help="Run it through this URL of the same database instead, e.g. as a "
                   "PostgreSQL role that may only read (see docs/security.md).")
@click.pass_context
def sql(ctx: click.Context, statement: str, df_tag: str | None, fmt: str,
        timeout: float | None, max_rows: int, read_url: str | None) -> None:
    """Run a read-only SQL STATEMENT (one query); the dataflow's set names (itrain, otrain, ...)
    resolve to its tables. Use '-' to read the statement from standard input."""
    from dlprov.query.sql import sql as run_sql
    if statement == "-":
        statement = sys.stdin.read()
    result = run_sql(statement, store=ctx.obj, dataflow=df_tag, read_url=read_url,
                     timeout=timeout, max_rows=max_rows)
    click.echo(render(result.columns, result.rows, fmt))


@cli.command()
@dataflow_option
@click.option("--all", "all_dataflows", is_flag=True, help="Describe every dataflow.")
@click.option("--attributes", "list_attributes", is_flag=True,
              help="List the attributes instead: set, column, type and the name each was made "
                   "for (label), e.g. a framework's metric val/loss.")
@format_option
@click.pass_context
def schema(ctx: click.Context, df_tag: str | None, all_dataflows: bool, list_attributes: bool,
           fmt: str) -> None:
    """Show dataflow specs: transformations, their input and output sets, and set tables
    (a column made for another name shows it: ``val_loss_2 numeric ← 'val-loss'``)."""
    from dlprov.query.schema import attributes, describe
    df_tag = None if all_dataflows else df_tag
    if list_attributes:
        rows = attributes(_store(ctx), df_tag, all_dataflows)
        click.echo(render_records(rows, ["dataflow", "set", "attribute", "type", "allow_nan",
                                         "label"], fmt))
    elif ctx.get_parameter_source("fmt") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--format is for --attributes")
    else:
        click.echo(describe(_store(ctx), df_tag, all_dataflows))


@cli.command()
@click.option("--candidates", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Number of candidate models to train.")
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(1, 500))
@click.option("--output-dir", default="demo-output", show_default=True,
              type=click.Path(file_okay=False), help="Where model files are saved.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--parsl", "use_parsl", is_flag=True,
              help="Train the candidates in parallel as Parsl apps, in one execution "
                   "(needs the parsl extra).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Parsl worker processes (with --parsl).")
@click.pass_context
def demo(ctx: click.Context, candidates: int, epochs: int, output_dir: str,
         no_progress: bool, use_parsl: bool, workers: int) -> None:
    """Train candidate MLPs on scikit-learn's digits with full provenance, then query it."""
    if use_parsl:
        from dlprov.demo.parallel import run_parallel_demo
        run_parallel_demo(store=_store(ctx), candidates=candidates, epochs=epochs,
                          workers=workers, output_dir=output_dir, progress=not no_progress,
                          echo=click.echo)
        return
    if ctx.get_parameter_source("workers") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--workers is for --parsl")
    from dlprov.demo.workflow import run_demo
    run_demo(store=_store(ctx), candidates=candidates, epochs=epochs, output_dir=output_dir,
             progress=not no_progress, echo=click.echo)


@cli.command()
@click.argument("spooled", required=False, metavar="[SPOOL_FILE_OR_DIR]",
                type=click.Path(exists=True))
@click.option("--store", "-s", "store_url", metavar="URL", help="Store to replay into.")
@click.pass_context
def replay(ctx: click.Context, spooled: str | None, store_url: str | None) -> None:
    """Write the records that processes which died while their store was down left spooled
    (default: this store's spool folders, beside it and in the user's cache); each batch
    exactly once. What the store refuses is set aside, each record with its reason, in a
    .rejected.jsonl file: replay that file by name once the cause is fixed. Live processes'
    files stay."""
    from dlprov.recorder.replay import replay as replay_spool
    report = replay_spool(Store(store_url or ctx.obj), spooled)
    all_refused = [f for f in report.files if f.refused and not f.written and not f.outage]
    if report.files and len(all_refused) == len(report.files):
        click.echo(f"nothing written: the store refused all {report.rejected} records again",
                   err=True)
    else:
        click.echo(f"replayed {len(report.replayed)} spool files ({report.written} records "
                   f"written, {report.rejected} set aside); {len(report.live)} of live "
                   f"processes skipped")
    for done in report.files:
        if done.refused:
            click.echo(f"set aside {done.refused} records of {done.path} that the store "
                       f"refused ({'; '.join(done.reasons[:3])}): kept, each with its reason, "
                       f"in {done.rejected_to}", err=True)
        if done.outage is not None:
            click.echo(f"error: store did not answer ({done.outage}); kept {done.path} "
                       f"({done.left} records)", err=True)
    for path in report.waiting:
        click.echo(f"note: {path} holds records the store refused before; replay it by name "
                   f"once the cause is fixed", err=True)
    if report.failed or report.rejected:
        ctx.exit(1)


@cli.command()
@click.option("--from", "source", required=True, metavar="URL",
              help="Store to copy from (URL or SQLite path).")
@click.option("--to", "target", required=True, metavar="URL",
              help="Empty store to copy into (URL or SQLite path).")
def migrate(source: str, target: str) -> None:
    """Copy a whole store to another (SQLite <-> PostgreSQL), ids preserved, in one
    transaction; the target must be empty."""
    from dlprov.store.migrate import migrate as migrate_store
    report = migrate_store(source, target)
    click.echo(f"migrated {report.total} rows in {len(report.rows)} tables")


# Commands in their own modules, imported when used (dlprov.cli.lazy): startup stays short.
for _name, _target in {
        "export": "dlprov.cli.export:export",
        "query": "dlprov.cli.query:query",
        "metrics": "dlprov.cli.metrics:metrics",
        "import": "dlprov.cli.imports:import_command",
        "serve": "dlprov.cli.serve:serve",
        "graph": "dlprov.cli.graph:graph",
        "neo4j": "dlprov.cli.neo4j:neo4j",
        "package": "dlprov.cli.package:package_command",
        "verify": "dlprov.cli.package:verify_command",
        "inspect": "dlprov.cli.package:inspect_command",
        "keygen": "dlprov.cli.package:keygen_command",
        "diff": "dlprov.cli.diff:diff",
        "reproduce": "dlprov.cli.reproduce:reproduce",
        "validate": "dlprov.cli.validate:validate",
        "ui": "dlprov.cli.ui:ui",
        "mlflow": "dlprov.cli.mlflow:mlflow"}.items():
    cli.add_lazy(_name, _target)


def main() -> None:
    """Console entry point."""
    cli(prog_name="dlprov")
