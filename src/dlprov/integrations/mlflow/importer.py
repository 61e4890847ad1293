"""Importing MLflow runs into dlprov (``dlprov mlflow import``).

    from dlprov.integrations.mlflow.importer import import_runs
    report = import_runs("sqlite:///mlflow.db", store="dlprov.db")
    print(report.summary())

Each experiment becomes a dataflow, each ended run an execution (tagged with its name and the
start of its id) with a ``train`` task: parameters are its ``itrain`` element (numbers as
numbers), each metric's full history its ``otrain`` elements by step (with the points'
timestamps; repeated points dropped), metrics named as a test or evaluation
(:data:`~.mapping.TEST_PREFIXES`) the ``otest`` elements of a ``test`` task that used the
model, dataset inputs the ``itraindataset`` elements the training used (Q11), logged models
``trained_model`` entities (with size and sha256 where the artifacts are local files). Tags,
the git and source tags and the user are the execution's tags, environment and agent; a child
run's training depends on its parent's. MLflow's run, experiment and model ids are kept
(tags ``mlflow_run_id``, ``mlflow_experiment_id``; the model's id is its dlprov id).

Each run is written in one transaction, under a batch id naming the run: importing again
writes only runs not imported before. Runs still running are left for a later import.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from dlprov.capture.task import Task
from dlprov.errors import StoreUnavailable
from dlprov.integrations.common import TrainingCapture, conventional
from dlprov.integrations.data import ATTRIBUTES as DATA_ATTRIBUTES
from dlprov.integrations.data import TRAINING_DATA
from dlprov.integrations.mlflow import mapping as m
from dlprov.integrations.mlflow.client import local_path, open_client
from dlprov.integrations.mlflow.collect import CollectedRun, derived_key
from dlprov.model.names import OTEST, OTRAIN, OTRAINEDMODEL, TEST
from dlprov.model.spec import Attribute, AttributeType
from dlprov.store.store import Store, as_store

#: The batch id under which an MLflow run is written (the store's ledger of applied batches).
BATCH_PREFIX = "mlflow-run:"
_ENDED = {"FINISHED", "FAILED", "KILLED"}
_OWN_TRAIN = (Attribute("timestamp", AttributeType.TIMESTAMP),
              Attribute("step", AttributeType.NUMERIC))
#: The attributes of an MLflow dataset input in ``itraindataset``.
DATA_SET_ATTRIBUTES = (*DATA_ATTRIBUTES, Attribute("context", AttributeType.TEXT))
_PAGE = 1000


@dataclass
class ImportReport:
    """What an import did: runs imported, found imported before, left (still running), and
    the runs that failed (nothing of them stored), with their reasons."""

    tracking_uri: str
    imported: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    dataflows: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for people."""
        lines = [*(f"note: {n}" for n in self.notes),
                 f"imported {len(self.imported)} run(s) from {self.tracking_uri} into "
                 f"dataflow(s) {', '.join(sorted(self.dataflows)) or '-'}; "
                 f"{len(self.already)} imported before, {len(self.running)} still running "
                 f"(import them when they end)"]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"error: run {run}: {why} (nothing of it was stored)"
                  for run, why in self.failed]
        return "\n".join(lines)


def import_runs(tracking_uri: str, *, store: Store | str | None = None,
                experiments: Sequence[str] = (), test_prefixes: Sequence[str] = m.TEST_PREFIXES,
                progress: Callable[[int], Any] | None = None,
                total: Callable[[int], Any] | None = None) -> ImportReport:
    """Import the ended runs of ``experiments`` (names or ids; default: every active one) of
    the MLflow tracking store ``tracking_uri`` into ``store``. ``total(n)`` is told how many
    runs will be looked at, ``progress(1)`` after each. Raises :class:`StoreUnavailable` for a
    tracking store that cannot be read; a run that cannot be stored is reported, not raised."""
    opened = open_client(tracking_uri)
    client = opened.client
    store = as_store(store)
    report = ImportReport(opened.uri, notes=list(opened.notes))
    chosen = _experiments(client, experiments)
    runs = [(e, run) for e in chosen for run in _runs(client, e.experiment_id)]
    runs.sort(key=lambda pair: pair[1].info.start_time or 0)  # parents before children
    if total is not None:
        total(len(runs))
    writer = store.writer()
    stored = writer.applied([BATCH_PREFIX + run.info.run_id for _, run in runs])
    models = _logged_models(client, [e.experiment_id for e in chosen])
    for experiment, run in runs:
        run_id = run.info.run_id
        name = m.exec_tag(run.info.run_name, run_id)
        if BATCH_PREFIX + run_id in stored:
            report.already.append(name)
        elif run.info.status not in _ENDED:
            report.running.append(name)
        else:
            try:
                records = _records(client, store, experiment, run, models.get(run_id, []),
                                   stored, tuple(test_prefixes), report.warnings)
                writer.write(records, batch_id=BATCH_PREFIX + run_id)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - a refusal stops this run, not the import
                report.failed.append((name, _one_line(exc)))
            else:
                stored.add(BATCH_PREFIX + run_id)
                report.imported.append(name)
                report.dataflows.add(m.dataflow_tag(experiment.name))
        if progress is not None:
            progress(1)
    return report


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _experiments(client: Any, wanted: Sequence[str]) -> list[Any]:
    found = list(_paged(lambda token: client.search_experiments(max_results=_PAGE,
                                                                page_token=token)))
    if not wanted:
        return found
    chosen = []
    for name in wanted:
        match = [e for e in found if name in (e.name, e.experiment_id)]
        if not match:
            raise StoreUnavailable(f"no experiment {name!r} in the tracking store (it has: "
                                   f"{', '.join(e.name for e in found) or 'none'})")
        chosen += match
    return chosen


def _runs(client: Any, experiment_id: str) -> Iterator[Any]:
    return _paged(lambda token: client.search_runs([experiment_id], max_results=_PAGE,
                                                   page_token=token))


def _paged(page: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        found = page(token)
        yield from found
        token = getattr(found, "token", None)
        if not token:
            return


def _logged_models(client: Any, experiment_ids: list[str]) -> dict[str, list[Any]]:
    """MLflow 3's logged models of the experiments, by the run that logged them."""
    found: dict[str, list[Any]] = {}
    if not experiment_ids or not hasattr(client, "search_logged_models"):
        return found
    for model in _paged(lambda token: client.search_logged_models(
            experiment_ids, max_results=_PAGE, page_token=token)):
        if model.source_run_id:
            found.setdefault(model.source_run_id, []).append(model)
    return found


def _records(client: Any, store: Store, experiment: Any, run: Any, models: list[Any],
             stored: set[str], prefixes: tuple[str, ...], warnings: list[str]) -> list[tuple]:
    """The records of one MLflow run, checked by capture and collected (not yet written)."""
    info, data = run.info, run.data
    tags = dict(data.tags)
    parent = tags.get("mlflow.parentRunId")
    df_tag = m.dataflow_tag(experiment.name)
    collected = CollectedRun(
        store, df_tag, m.exec_tag(info.run_name, info.run_id), f"mlflow:{info.run_id}",
        fields={"start_time": m.timestamp(info.start_time), "username": info.user_id or None,
                "workspace": info.artifact_uri},
        tags=m.tags_of(tags, {"mlflow_run_id": info.run_id,
                              "mlflow_experiment_id": experiment.experiment_id,
                              **({"mlflow_parent_run_id": parent} if parent else {})},
                       warnings),
        notes=tags.get("mlflow.note.content"), label=experiment.name)
    collected.environment(m.environment_of(tags))
    depends_on = []
    if parent and BATCH_PREFIX + parent in stored:  # the parent's training, imported
        depends_on = [Task.recorded(collected, derived_key(f"mlflow:{parent}", 1), "train")]
    capture = TrainingCapture(run=collected, depends_on=depends_on, uses=[])
    params = {k: m.param_value(v) for k, v in data.params.items()}
    train = capture.start_training(params)
    _record_datasets(collected, train, run)
    history = _history(client, info.run_id, data.metrics)
    train_metrics = {k: v for k, v in history.items() if not m.is_test_metric(k, prefixes)}
    test_metrics = {k: v for k, v in history.items() if m.is_test_metric(k, prefixes)}
    for own, metrics in _rows(train_metrics):
        row = capture.metric_row(OTRAIN, conventional(OTRAIN, metrics), _OWN_TRAIN, own)
        train.output(OTRAIN, **own, **row)
    for model in [*models, *_history_models(tags, info, models)]:
        path = local_path(model.artifact_location)
        model_id = train.model(path if path is not None else model.artifact_location,
                               name=model.name, framework=model.model_type or None)
        collected.rename_model(model_id, model.model_id,
                               None if path is not None else model.artifact_location)
    train.end(None if info.status == "FINISHED" else f"MLflow run {info.status}")
    if test_metrics:
        test = collected.task(TEST, depends_on=train, uses=[OTRAINEDMODEL]
                              if OTRAINEDMODEL in train.produced else None)
        for own, metrics in _rows(test_metrics):
            row = capture.metric_row(OTEST, conventional(OTEST, metrics), _OWN_TRAIN, own)
            test.output(OTEST, **own, **row)
        test.end()
    collected.end(None if info.status == "FINISHED" else f"MLflow run {info.status}")
    collected.retime(m.timestamp(info.start_time), m.timestamp(info.end_time))
    return collected.records


def _record_datasets(collected: CollectedRun, train: Any, run: Any) -> None:
    inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
    if inputs:
        collected.declare_set(TRAINING_DATA, DATA_SET_ATTRIBUTES)
    for dataset_input in inputs:
        train.input(TRAINING_DATA, **m.dataset_values(dataset_input))


def _history(client: Any, run_id: str, latest: dict[str, float]) -> dict[str, list[Any]]:
    """Each metric's full history, in order, without the repeated points a file store may
    hold (same step, timestamp and value)."""
    found = {}
    for key in latest:
        points, seen = [], set()
        for point in client.get_metric_history(run_id, key):
            mark = (point.step, point.timestamp, point.value)
            if mark not in seen:
                seen.add(mark)
                points.append(point)
        points.sort(key=lambda p: (p.step, p.timestamp))
        found[key] = points
    return found


def _rows(history: dict[str, list[Any]]) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    """One element per step (a metric logged several times at one step adds elements):
    (own values: step and timestamp, metrics)."""
    rows: dict[tuple[int, int], tuple[dict[str, Any], dict[str, Any]]] = {}
    for key, points in history.items():
        seen_at: dict[int, int] = {}
        for point in points:
            n = seen_at[point.step] = seen_at.get(point.step, -1) + 1
            own, metrics = rows.setdefault((point.step, n), ({"timestamp": None,
                                                              "step": point.step}, {}))
            stamp = m.timestamp(point.timestamp)
            if own["timestamp"] is None or stamp > own["timestamp"]:
                own["timestamp"] = stamp
            metrics[key] = point.value
    for key in sorted(rows):
        yield rows[key]


@dataclass
class _HistoryModel:
    """A model an MLflow 2 run logged (tag ``mlflow.log-model.history``), not a LoggedModel."""
    model_id: str
    name: str
    artifact_location: str
    model_type: str | None = None


def _history_models(tags: dict[str, str], info: Any, known: list[Any]) -> list[_HistoryModel]:
    try:
        entries = json.loads(tags.get("mlflow.log-model.history") or "[]")
    except ValueError:
        return []
    ids = {getattr(k, "model_id", None) for k in known}
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not entry.get("artifact_path"):
            continue
        model_id = entry.get("model_id") or entry.get("model_uuid")
        if model_id in ids or not model_id:
            continue
        flavors = [f for f in entry.get("flavors", {}) if f != "python_function"]
        found.append(_HistoryModel(str(model_id)[:36], entry["artifact_path"],
                                   f"{info.artifact_uri.rstrip('/')}/{entry['artifact_path']}",
                                   flavors[0] if flavors else None))
    return found
