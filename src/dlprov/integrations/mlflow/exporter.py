"""Exporting dlprov executions into an MLflow tracking store (``dlprov mlflow export``), so
that a team can look at dlprov-captured runs in MLflow too.

    from dlprov.integrations.mlflow.exporter import export_runs
    print(export_runs("sqlite:///mlflow.db", store="dlprov.db").summary())

Each dataflow becomes an experiment of the same name, each ended execution a run named by its
exec tag: its ``itrain`` parameters, its ``otrain`` and ``otest`` metric histories by step, its
tags, and tags linking back (``dlprov.execution``: the execution's key, ``dlprov.exec_tag``,
``dlprov.store``). An execution exported before (a run of the experiment carries its key) or
imported from this same MLflow store is left alone; a run whose export fails midway is deleted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from dlprov.errors import NotFound
from dlprov.integrations.mlflow import reads
from dlprov.integrations.mlflow.client import open_client
from dlprov.store.store import Store, as_store

LINK_TAG = "dlprov.execution"
_BATCH = 1000  # MLflow's log_batch takes at most 1000 metrics, 100 params, 100 tags
_PARAMS = _TAGS = 100


@dataclass
class ExportReport:
    """What an export did."""

    tracking_uri: str
    exported: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for people."""
        lines = [*(f"note: {n}" for n in self.notes),
                 f"exported {len(self.exported)} execution(s) to {self.tracking_uri}; "
                 f"{len(self.already)} there before, {len(self.running)} still running"]
        lines += [f"error: execution {tag}: {why} (its MLflow run was removed)"
                  for tag, why in self.failed]
        return "\n".join(lines)


def export_runs(tracking_uri: str, *, store: Store | str | None = None,
                dataflows: Sequence[str] = ()) -> ExportReport:
    """Write the ended executions of ``dataflows`` (default: all) of ``store`` into the MLflow
    tracking store ``tracking_uri``; executions there already are skipped."""
    opened = open_client(tracking_uri, must_exist=False)
    client, store = opened.client, as_store(store)
    report = ExportReport(opened.uri, notes=list(opened.notes))
    known = {row["tag"]: row for row in reads.dataflows(store)}
    chosen = [d.lower() for d in dataflows] or sorted(known)
    for df_tag in chosen:
        if df_tag not in known:
            raise NotFound(f"no dataflow {df_tag!r} in {store.safe_url}; it has: "
                           f"{', '.join(sorted(known)) or 'none'}")
        name = known[df_tag]["label"] or df_tag
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else client.create_experiment(name)
        there = _exported(client, experiment_id)
        for run, history in reads.runs_with_history(store, df_tag):
            tag = run.info.run_name
            source = run.data.tags.get("mlflow_run_id")
            if run.info.run_id in there or (source and _exists(client, source)):
                report.already.append(tag)
            elif run.info.status == "RUNNING":
                report.running.append(tag)
            else:
                try:
                    _export(client, experiment_id, run, history, store)
                    report.exported.append(tag)
                except Exception as exc:  # noqa: BLE001 - one execution, not the export
                    report.failed.append((tag, f"{type(exc).__name__}: {exc}"[:300]))
    return report


def _exported(client: Any, experiment_id: str) -> set[str]:
    """The dlprov execution keys the experiment's runs carry."""
    found, token = set(), None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        found |= {r.data.tags[LINK_TAG] for r in page if LINK_TAG in r.data.tags}
        token = page.token
        if not token:
            return found


def _exists(client: Any, run_id: str) -> bool:
    try:
        client.get_run(run_id)
        return True
    except Exception:  # noqa: BLE001 - MLflow says "not found" in several ways
        return False


def _export(client: Any, experiment_id: str, run: Any, history: dict[str, list],
            store: Store) -> None:
    """One execution as one MLflow run: all of it, or the run is deleted."""
    from mlflow.entities import Param, RunTag
    info = run.info
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    tags.update({LINK_TAG: info.run_id, "dlprov.exec_tag": info.run_name,
                 "dlprov.store": store.safe_url})
    created = client.create_run(experiment_id, start_time=info.start_time, tags=tags,
                                run_name=info.run_name)
    run_id = created.info.run_id
    try:
        params = [Param(k, v) for k, v in run.data.params.items()]
        for start in range(0, len(params), _PARAMS):
            client.log_batch(run_id, params=params[start:start + _PARAMS])
        points = [p for series in history.values() for p in series]
        for start in range(0, len(points), _BATCH):
            client.log_batch(run_id, metrics=points[start:start + _BATCH])
        user = info.user_id
        if user:
            client.log_batch(run_id, tags=[RunTag("mlflow.user", user)])
        client.set_terminated(run_id, info.status, end_time=info.end_time)
    except BaseException:
        client.delete_run(run_id)
        raise
