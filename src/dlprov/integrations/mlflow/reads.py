"""MLflow's view of what a dlprov store holds (the tracking-store plugin's read side).

A dataflow is an experiment (its id is the dataflow tag; MLflow's default experiment ``0`` is
dataflow ``Default``), an execution is a run (its id is the execution's key): parameters from
``itrain``, metric histories from ``otrain`` and ``otest`` (each numeric column but ``step``
and ``timestamp``, named as logged: the attribute's label), tags from the execution's tags
(MLflow's own keys restored). Runs imported by ``dlprov mlflow import`` read the same way.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dlprov.errors import DlprovError
from dlprov.integrations.data import TRAINING_DATA
from dlprov.integrations.mlflow import mapping as m
from dlprov.model.names import OTEST, OTRAIN
from dlprov.model.spec import AttributeType, DataflowSpec
from dlprov.query.sql import builtin_sql
from dlprov.store import schema as s
from dlprov.store.specs import read_spec
from dlprov.store.store import Store

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT = "Default"
#: Execution tags the plugin keeps for itself (not shown as MLflow tags).
ARTIFACT_TAG = "mlflow_artifact_uri"
_STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED"}
_OWN = {"step", "timestamp"}


def experiment_id(df_tag: str) -> str:
    return DEFAULT_EXPERIMENT_ID if df_tag.lower() == DEFAULT_EXPERIMENT.lower() else \
        df_tag.lower()


def dataflow_of(experiment: str) -> str:
    """The dataflow tag of MLflow experiment id ``experiment``."""
    return DEFAULT_EXPERIMENT.lower() if experiment == DEFAULT_EXPERIMENT_ID else \
        experiment.lower()


def millis(moment: datetime | str | None) -> int | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return int(moment.timestamp() * 1000)


def _mlflow_keys() -> dict[str, str]:
    """dlprov tag key -> MLflow's own system tag key (``mlflow_runName`` -> ``mlflow.runName``)."""
    from mlflow.utils import mlflow_tags
    keys = {v for k, v in vars(mlflow_tags).items()
            if k.isupper() and isinstance(v, str) and v.startswith("mlflow.")}
    return {m.tag_key(k): k for k in keys}


def dataflows(store: Store) -> list[dict[str, Any]]:
    """The store's dataflows: tag, label, creation time."""
    try:
        with store.read() as conn:
            rows = conn.execute(select(s.dataflow.c.tag, s.dataflow.c.label,
                                       s.dataflow.c.created_at)).all()
    except Exception:  # noqa: BLE001 - a store without tables yet holds no experiment
        return []
    return [dict(row._mapping) for row in rows]


def runs(store: Store, df_tag: str, run_ids: set[str] | None = None) -> list[Any]:
    """The MLflow runs of dataflow ``df_tag`` (only ``run_ids`` if given)."""
    return [run for run, _ in runs_with_history(store, df_tag, run_ids)]


def runs_with_history(store: Store, df_tag: str,
                      run_ids: set[str] | None = None) -> list[tuple[Any, dict[str, list]]]:
    """(run, {metric: every point}) of each MLflow run of dataflow ``df_tag``."""
    from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunInputs, RunTag
    e, t, dt, d = s.dataflow_execution, s.task, s.data_transformation, s.dataflow
    with store.read() as conn:
        found = read_spec(conn, df_tag)
        if found is None:
            return []
        spec = found[2]
        query = (select(e.c.id, e.c.uuid, e.c.tag, e.c.status, e.c.start_time, e.c.end_time,
                        e.c.username).join(d, d.c.id == e.c.df_id).where(d.c.tag == df_tag))
        if run_ids is not None:
            query = query.where(e.c.uuid.in_(sorted(run_ids)))
        executions = [dict(row._mapping) for row in conn.execute(query)]
        ids = [x["id"] for x in executions]
        tasks = conn.execute(select(t.c.id, t.c.exec_id, dt.c.tag).join(
            dt, dt.c.id == t.c.dt_id).where(t.c.exec_id.in_(ids))).all() if ids else []
        tags = conn.execute(select(s.execution_tag).where(
            s.execution_tag.c.exec_id.in_(ids))).all() if ids else []
    exec_of = {task.id: task.exec_id for task in tasks}
    started = {x["id"]: millis(x["start_time"]) for x in executions}
    params: dict[int, dict[str, str]] = {}
    for row in _rows(store, spec, "itrain"):
        owner = exec_of.get(row.get("train_task_id"))
        if owner is not None:
            for name, value in _values(spec, "itrain", row):
                params.setdefault(owner, {})[name] = _text(value)
    history: dict[int, dict[str, list]] = {}
    for set_tag in (OTRAIN, OTEST):
        for row in _rows(store, spec, set_tag):
            owner = next((exec_of[v] for k, v in row.items()
                          if k.endswith("_task_id") and v in exec_of), None)
            if owner is None:
                continue
            # dlprov's own trainings count epochs; their elements may have no timestamp
            step = int(row.get("step", row.get("epoch")) or 0)
            stamp = millis(row.get("timestamp")) or started.get(owner) or 0
            for name, value in _values(spec, set_tag, row, numbers_only=True):
                history.setdefault(owner, {}).setdefault(name, []).append(
                    Metric(name, float(value), stamp, step))
    inputs: dict[int, list] = {}
    for row in _rows(store, spec, TRAINING_DATA):
        owner = exec_of.get(row.get("train_task_id"))
        if owner is not None:
            inputs.setdefault(owner, []).append(dataset_input(row))
    keys = _mlflow_keys()
    tags_of: dict[int, dict[str, str]] = {}
    for row in tags:
        tags_of.setdefault(row.exec_id, {})[keys.get(row.key, row.key)] = row.value
    found_runs = []
    for x in executions:
        tags = tags_of.get(x["id"], {})
        artifact_uri = tags.pop(ARTIFACT_TAG, None)
        name = tags.get("mlflow.runName") or x["tag"]
        tags["mlflow.runName"] = name
        latest = [max(points, key=lambda p: (p.step, p.timestamp))
                  for points in history.get(x["id"], {}).values()]
        info = RunInfo(run_id=x["uuid"], experiment_id=experiment_id(df_tag), user_id=x["username"]
                       or "", status=_STATUS.get(x["status"], "FAILED"),
                       start_time=millis(x["start_time"]), end_time=millis(x["end_time"]),
                       lifecycle_stage="active", artifact_uri=artifact_uri, run_name=name)
        data = RunData(metrics=latest,
                       params=[Param(k, v) for k, v in params.get(x["id"], {}).items()],
                       tags=[RunTag(k, v) for k, v in tags.items()])
        found_runs.append((Run(info, data, RunInputs(dataset_inputs=inputs.get(x["id"], []))),
                           history.get(x["id"], {})))
    return found_runs


def dataset_input(row: dict[str, Any]) -> Any:
    """An element of ``itraindataset`` as an MLflow dataset input (name, digest, source,
    context)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    kind = str(row.get("kind") or "unknown")
    source = json.dumps({"uri": row["dataset_dir"]}) if row.get("dataset_dir") else "{}"
    context = row.get("context") or "training"
    return DatasetInput(Dataset(name=str(row.get("name") or "data"),
                                digest=str(row.get("digest") or ""),
                                source_type=kind.removeprefix("mlflow:"), source=source),
                        [InputTag("mlflow.data.context", context)])


def dataset_summaries(store: Store, df_tag: str) -> list[Any]:
    """The distinct datasets the runs of ``df_tag`` used, as MLflow's UI lists them."""
    from mlflow.entities.dataset_summary import _DatasetSummary
    found = {}
    for run in runs(store, df_tag):
        for item in run.inputs.dataset_inputs:
            context = next((t.value for t in item.tags if t.key == "mlflow.data.context"), None)
            key = (item.dataset.name, item.dataset.digest, context)
            found.setdefault(key, _DatasetSummary(experiment_id(df_tag), *key))
    return list(found.values())


def metric_history(store: Store, df_tag: str, run_id: str, key: str) -> list[Any]:
    """Every point of metric ``key`` of run ``run_id``, by step."""
    found = runs_with_history(store, df_tag, {run_id})
    if not found:
        return []
    return sorted(found[0][1].get(key, []), key=lambda p: (p.step, p.timestamp))


def _rows(store: Store, spec: DataflowSpec, set_tag: str) -> list[dict[str, Any]]:
    if set_tag not in spec.sets:
        return []
    try:
        return builtin_sql(f"SELECT * FROM {set_tag}", store=store, dataflow=spec.tag,
                           max_rows=0).records()
    except DlprovError:
        return []


def _values(spec: DataflowSpec, set_tag: str, row: dict[str, Any], *,
            numbers_only: bool = False):
    """(name as logged, value) of a row's attributes that hold a value."""
    attributes = spec.sets[set_tag].attributes
    for column, value in row.items():
        attribute = attributes.get(column)
        if attribute is None or value is None or (numbers_only and column in _OWN):
            continue
        if numbers_only and attribute.type is not AttributeType.NUMERIC:
            continue
        yield (attribute.label or attribute.name), value


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def logged_models(store: Store, df_tag: str) -> list[Any]:
    """The trained models of dataflow ``df_tag`` as MLflow logged models (ready, with the run
    that trained them as their source)."""
    from mlflow.entities import LoggedModel, LoggedModelStatus
    tm, e, d = s.trained_model, s.dataflow_execution, s.dataflow
    try:
        with store.read() as conn:
            rows = conn.execute(
                select(tm.c.model_id, tm.c.name, tm.c.path, tm.c.framework, tm.c.created_at,
                       e.c.uuid).join(e, e.c.id == tm.c.exec_id).join(d, d.c.id == e.c.df_id)
                .where(d.c.tag == df_tag)).all()
    except Exception:  # noqa: BLE001 - a store without tables yet holds no model
        return []
    found = []
    for row in rows:
        stamp = millis(row.created_at) or 0
        found.append(LoggedModel(
            experiment_id=experiment_id(df_tag), model_id=row.model_id, name=row.name,
            artifact_location=row.path, creation_timestamp=stamp, last_updated_timestamp=stamp,
            model_type=row.framework, source_run_id=row.uuid, status=LoggedModelStatus.READY))
    return found
