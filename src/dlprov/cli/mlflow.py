"""``dlprov mlflow import`` and ``dlprov mlflow export``: MLflow's runs in dlprov, and back.

Twins of :func:`dlprov.integrations.mlflow.importer.import_runs` and
:func:`dlprov.integrations.mlflow.exporter.export_runs`.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import click

from dlprov.store.store import Store


@click.group("mlflow")
def mlflow() -> None:
    """Bring MLflow runs into dlprov (import) or write dlprov executions into MLflow
    (export). Capturing MLflow code live needs no command: set
    MLFLOW_TRACKING_URI=dlprov:///path/dlprov.db."""


@mlflow.command("import")
@click.option("--tracking-uri", required=True, metavar="URI",
              help="MLflow tracking store: sqlite:///mlflow.db, ./mlruns (a file store) or "
                   "http://host:5000 (an MLflow server).")
@click.option("--experiment", "experiments", multiple=True, metavar="NAME",
              help="Experiment name or id to import; repeat for several (default: all).")
@click.option("--store", "store_url", metavar="URL",
              help="dlprov store to import into (default: the global --store, $DLPROV_STORE "
                   "or ./dlprov.db).")
@click.option("--test-prefix", "prefixes", multiple=True, metavar="PREFIX",
              help="Metric name prefix of a test or evaluation context, recorded in otest; "
                   "repeat for several (default: test_, test/, eval_, eval/).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def import_command(ctx: click.Context, tracking_uri: str, experiments: tuple[str, ...],
                   store_url: str | None, prefixes: tuple[str, ...], no_progress: bool) -> None:
    """Import the ended runs of an MLflow tracking store: each experiment a dataflow, each run
    an execution with its parameters (itrain), metric histories (otrain, otest), datasets,
    logged models, tags, environment and user. Importing again adds only new runs."""
    from dlprov.integrations.mlflow.importer import import_runs
    from dlprov.integrations.mlflow.mapping import TEST_PREFIXES
    with _progress(not no_progress) as (total, advance):
        report = import_runs(tracking_uri, store=Store(store_url or ctx.obj),
                             experiments=experiments, test_prefixes=prefixes or TEST_PREFIXES,
                             progress=advance, total=total)
    click.echo(report.summary())
    if report.failed:
        ctx.exit(1)


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[tuple]:
    """(tell the total, advance by n): a bar on standard error (tqdm's if installed, else
    click's), shown only where there are several runs and a terminal."""
    bar: list = []

    def total(n: int) -> None:
        if not show or n < 2:
            return
        try:
            from tqdm import tqdm
            bar.append(tqdm(total=n, unit="run", desc="importing", leave=False))
        except ImportError:
            found = click.progressbar(length=n, label="importing", file=click.get_text_stream(
                "stderr"))
            found.__enter__()
            bar.append(found)

    def advance(n: int) -> None:
        if bar:
            bar[0].update(n)

    try:
        yield total, advance
    finally:
        if bar:
            closing = getattr(bar[0], "close", None)
            if closing is not None and not hasattr(bar[0], "render_progress"):
                closing()
            else:
                bar[0].__exit__(None, None, None)


@mlflow.command("export")
@click.option("--tracking-uri", required=True, metavar="URI",
              help="MLflow tracking store to write into: sqlite:///mlflow.db, ./mlruns or "
                   "http://host:5000.")
@click.option("--dataflow", "-d", "dataflows", multiple=True, metavar="TAG",
              help="Dataflow to export; repeat for several (default: all).")
@click.option("--store", "store_url", metavar="URL",
              help="dlprov store to export from (default: the global --store, $DLPROV_STORE "
                   "or ./dlprov.db).")
@click.pass_context
def export_command(ctx: click.Context, tracking_uri: str, dataflows: tuple[str, ...],
                   store_url: str | None) -> None:
    """Write dlprov's ended executions into an MLflow tracking store: each dataflow an
    experiment, each execution a run with its parameters, metric histories by step, tags and
    a link back (tag dlprov.execution). Exporting again adds only new executions."""
    from dlprov.integrations.mlflow.exporter import export_runs
    report = export_runs(tracking_uri, store=Store(store_url or ctx.obj), dataflows=dataflows)
    click.echo(report.summary())
    if report.failed:
        ctx.exit(1)
