"""MLflow's tracking store backed by dlprov (``MLFLOW_TRACKING_URI=dlprov:///path/dlprov.db``).

Writes go to :class:`~.live.LiveRun` (dlprov's asynchronous recorder: training never waits on
storage, and a provenance failure is logged, never raised into training); reads come from the
live runs of this process and from dlprov's store (:mod:`.reads`), filtered, sorted and paged by
MLflow's own ``SearchUtils``. Artifacts stay in MLflow's artifact repository (by default a
folder ``mlartifacts`` beside the store). What dlprov does not keep (deleting and restoring
runs and experiments, traces, evaluation datasets, scorers, ...) raises
``NotImplementedError`` naming the method.
"""
from __future__ import annotations

import functools
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from mlflow.entities import (
    Experiment,
    LifecycleStage,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    RunInfo,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.search_utils import (
    SearchExperimentsUtils,
    SearchLoggedModelsUtils,
    SearchUtils,
)

import dlprov
from dlprov.integrations import common
from dlprov.integrations.mlflow import mapping as m
from dlprov.integrations.mlflow import reads
from dlprov.integrations.mlflow.client import local_path
from dlprov.integrations.mlflow.live import LiveRun
from dlprov.model.names import check_name
from dlprov.recorder.recorder import recorder_for
from dlprov.store.store import Store

def never_raises(method):
    """A write MLflow makes during training: a provenance failure is logged (rate-limited),
    never raised into training."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - provenance must never stop training
            common.throttle.warn(("mlflow", method.__name__, type(exc).__name__),
                          "dlprov: MLflow %s not recorded, training goes on: %s: %s",
                          method.__name__, type(exc).__name__, exc)
            return None
    return wrapper


class DlprovTrackingStore(AbstractStore):
    """An MLflow tracking store writing into, and reading from, dlprov store ``store_url``."""

    def __init__(self, store_url: str, artifact_uri: str | None = None,
                 test_prefixes: tuple[str, ...] = m.TEST_PREFIXES) -> None:
        super().__init__()
        self.store = Store(store_url)
        self.prefixes = tuple(test_prefixes)
        self.artifact_root = artifact_uri or _default_artifacts(self.store)
        self._live: dict[str, LiveRun] = {}
        self._experiments: dict[str, Experiment] = {}  # made here, maybe not written yet
        self._models: dict[str, LoggedModel] = {}
        self._lock = threading.Lock()

    # -- experiments ------------------------------------------------------------------------
    def create_experiment(self, name, artifact_location=None, tags=None):
        df_tag = m.dataflow_tag(name)
        book_tag = check_name("dataflow", df_tag)
        from dlprov.capture.specbook import specbook_for
        from dlprov.model import records as r
        book = specbook_for(self.store, book_tag)
        with book.lock:
            if book.spec.label is None and df_tag != book_tag:
                book.spec.label = df_tag
        recorder_for(self.store).put((r.SPEC, book_tag, book.snapshot()))
        found = self._experiment(book_tag, name)
        self._experiments[found.experiment_id] = found
        return found.experiment_id

    def _experiment(self, df_tag: str, name: str | None = None,
                    created: Any = None) -> Experiment:
        experiment_id = reads.experiment_id(df_tag)
        stamp = reads.millis(created) or int(time.time() * 1000)
        return Experiment(experiment_id, name or df_tag,
                          f"{self.artifact_root}/{experiment_id}", LifecycleStage.ACTIVE,
                          creation_time=stamp, last_update_time=stamp)

    def _all_experiments(self) -> dict[str, Experiment]:
        found = dict(self._experiments)
        for row in reads.dataflows(self.store):
            experiment = self._experiment(row["tag"], row["label"] or row["tag"],
                                          row["created_at"])
            found.setdefault(experiment.experiment_id, experiment)
        if reads.DEFAULT_EXPERIMENT_ID not in found:  # MLflow's runs land there by default
            found[reads.DEFAULT_EXPERIMENT_ID] = self._experiment(reads.DEFAULT_EXPERIMENT,
                                                                  reads.DEFAULT_EXPERIMENT)
        return found

    def get_experiment(self, experiment_id):
        found = self._all_experiments().get(str(experiment_id))
        if found is None:
            raise MlflowException(f"No experiment with id {experiment_id!r} in dlprov store "
                                  f"{self.store.safe_url}", RESOURCE_DOES_NOT_EXIST)
        return found

    def get_experiment_by_name(self, experiment_name):
        wanted = m.dataflow_tag(experiment_name).lower()
        for experiment in self._all_experiments().values():
            if reads.dataflow_of(experiment.experiment_id) == wanted:
                return experiment
        return None

    def search_experiments(self, view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                           filter_string=None, order_by=None, page_token=None):
        found = [] if view_type == ViewType.DELETED_ONLY else list(
            self._all_experiments().values())
        found = SearchExperimentsUtils.filter(found, filter_string)
        found = SearchExperimentsUtils.sort(found, order_by or [])
        page, token = SearchUtils.paginate(found, page_token, max_results)
        return PagedList(page, token)

    def set_experiment_tag(self, experiment_id, tag):
        raise NotImplementedError("dlprov's MLflow store: set_experiment_tag is not supported "
                                  "(a dataflow has no tags)")

    # -- runs: writes -----------------------------------------------------------------------
    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        from mlflow.utils.name_utils import _generate_random_name
        experiment = self.get_experiment(experiment_id)
        tags = {t.key: t.value for t in tags or []}
        run_name = run_name or tags.get("mlflow.runName") or _generate_random_name()
        tags["mlflow.runName"] = run_name
        key = uuid.uuid4().hex
        artifact_uri = f"{experiment.artifact_location}/{key}/artifacts"
        exec_tags = m.tags_of(tags, {reads.ARTIFACT_TAG: artifact_uri}, [])
        run = dlprov.run(m.dataflow_tag(experiment.name), exec_tag=m.exec_tag(run_name, key),
                         store=self.store, user=user_id or None, tags=exec_tags,
                         distributed=False)
        live = LiveRun(run, run_name=run_name, experiment_id=experiment.experiment_id,
                       artifact_uri=artifact_uri, tags=tags, prefixes=self.prefixes)
        with self._lock:
            self._live[live.run_id] = live
        return self._run_of(live)

    @never_raises
    def log_batch(self, run_id, metrics, params, tags):
        self._live_run(run_id).log(metrics, params, tags)

    def log_metric(self, run_id, metric):
        self.log_batch(run_id, [metric], [], [])

    def log_param(self, run_id, param):
        self.log_batch(run_id, [], [param], [])

    def set_tag(self, run_id, tag):
        self.log_batch(run_id, [], [], [tag])

    @never_raises
    def delete_tag(self, run_id, key):
        self._live_run(run_id).delete_tag(key)

    @never_raises
    def log_inputs(self, run_id, datasets=None, models=None):
        if datasets:
            self._live_run(run_id).log_inputs(datasets)

    def log_outputs(self, run_id, models):
        """The run's outputs are the models it logged (recorded when they are finalized)."""

    @never_raises
    def record_logged_model(self, run_id, mlflow_model):
        """MLflow 2's model record: the training's trained model, at its artifact path."""
        live = self._live_run(run_id)
        path = f"{live.artifact_uri}/{mlflow_model.artifact_path}"
        flavors = [f for f in mlflow_model.flavors if f != "python_function"]
        model_id = getattr(mlflow_model, "model_id", None) or f"m-{uuid.uuid4().hex}"
        if model_id not in self._models:
            live.model(str(local_path(path) or path), mlflow_model.artifact_path, model_id,
                       flavors[0] if flavors else None)

    def update_run_info(self, run_id, run_status, end_time, run_name):
        from mlflow.entities import RunStatus
        status = RunStatus.to_string(run_status) if isinstance(run_status, int) else run_status
        live = self._live.get(run_id)
        if live is None:
            raise NotImplementedError(f"dlprov's MLflow store: update_run_info of run {run_id} "
                                      f"started by another process is not supported")
        if run_name:
            live.run_name = run_name
        if status in ("FINISHED", "FAILED", "KILLED"):
            never_raises(live.end)(status, end_time)
        return self._run_of(live).info

    # -- runs: reads ------------------------------------------------------------------------
    def get_run(self, run_id):
        live = self._live.get(run_id)
        if live is not None:
            return self._run_of(live)
        for experiment_id in self._all_experiments():
            found = reads.runs(self.store, reads.dataflow_of(experiment_id), {run_id})
            if found:
                return found[0]
        raise MlflowException(f"Run {run_id!r} not found in dlprov store {self.store.safe_url}",
                              RESOURCE_DOES_NOT_EXIST)

    def _search_runs(self, experiment_ids, filter_string, run_view_type, max_results,
                     order_by, page_token):
        found = []
        if run_view_type != ViewType.DELETED_ONLY:
            self._flush()
            for experiment_id in experiment_ids:
                stored = reads.runs(self.store, reads.dataflow_of(str(experiment_id)))
                known = {run.info.run_id for run in stored}
                found += [self._run_of(self._live[r.info.run_id]) if r.info.run_id in self._live
                          else r for r in stored]
                found += [self._run_of(live) for live in list(self._live.values())
                          if live.experiment_id == str(experiment_id) and live.run_id not in known]
        found = SearchUtils.filter(found, filter_string)
        found = SearchUtils.sort(found, order_by or [])
        return SearchUtils.paginate(found, page_token, max_results)

    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        live = self._live.get(run_id)
        if live is not None:
            points = sorted(live.history.get(metric_key, []), key=lambda p: (p.step, p.timestamp))
        else:
            run = self.get_run(run_id)
            points = reads.metric_history(self.store, reads.dataflow_of(run.info.experiment_id),
                                          run_id, metric_key)
        if max_results is None:
            return PagedList(points, None)
        page, token = SearchUtils.paginate(points, page_token, max_results)
        return PagedList(page, token)

    # -- logged models ----------------------------------------------------------------------
    def create_logged_model(self, experiment_id="0", name=None, source_run_id=None, tags=None,
                            params=None, model_type=None):
        from mlflow.utils.name_utils import _generate_random_name
        experiment = self.get_experiment(experiment_id)
        model_id = f"m-{uuid.uuid4().hex}"
        stamp = int(time.time() * 1000)
        model = LoggedModel(
            experiment_id=experiment.experiment_id, model_id=model_id,
            name=name or _generate_random_name(),
            artifact_location=f"{experiment.artifact_location}/models/{model_id}/artifacts",
            creation_timestamp=stamp, last_updated_timestamp=stamp, model_type=model_type,
            source_run_id=source_run_id, status=LoggedModelStatus.PENDING,
            tags={t.key: t.value for t in tags or []},
            params={p.key: p.value for p in params or []})
        self._models[model_id] = model
        return model

    def finalize_logged_model(self, model_id, status):
        model = self.get_logged_model(model_id)
        model.status = status
        model.last_updated_timestamp = int(time.time() * 1000)
        live = self._live.get(model.source_run_id or "")
        if live is not None and status == LoggedModelStatus.READY:
            path = local_path(model.artifact_location)
            never_raises(live.model)(str(path) if path else model.artifact_location,
                                     model.name, model_id, model.model_type)
        return model

    def set_logged_model_tags(self, model_id, tags):
        model = self.get_logged_model(model_id)
        for tag in tags:
            model._add_tag(tag)

    def delete_logged_model_tag(self, model_id, key):
        self.get_logged_model(model_id).tags.pop(key, None)

    def get_logged_model(self, model_id, allow_deleted=False):
        found = self._models.get(model_id)
        if found is None:
            found = next((x for experiment in self._all_experiments()
                          for x in reads.logged_models(self.store,
                                                       reads.dataflow_of(experiment))
                          if x.model_id == model_id), None)
        if found is None:
            raise MlflowException(f"Logged model {model_id!r} not found in dlprov store "
                                  f"{self.store.safe_url}", RESOURCE_DOES_NOT_EXIST)
        return found

    def search_logged_models(self, experiment_ids, filter_string=None, datasets=None,
                             max_results=None, order_by=None, page_token=None):
        wanted = {str(e) for e in experiment_ids}
        found = [x for x in self._models.values() if x.experiment_id in wanted]
        known = {x.model_id for x in found}
        found += [x for experiment in wanted
                  for x in reads.logged_models(self.store, reads.dataflow_of(experiment))
                  if x.model_id not in known]
        found = SearchLoggedModelsUtils.filter_logged_models(found, filter_string, datasets)
        found = SearchLoggedModelsUtils.sort(found, order_by or [])
        page, token = SearchLoggedModelsUtils.paginate(found, page_token, max_results or 100)
        return PagedList(page, token)

    def _search_datasets(self, experiment_ids):
        """The datasets the experiments' runs used (MLflow's UI lists them)."""
        self._flush()
        return [x for experiment in experiment_ids
                for x in reads.dataset_summaries(self.store, reads.dataflow_of(str(experiment)))]

    def search_datasets(self, experiment_ids=None, filter_string=None, max_results=1000,
                        order_by=None, page_token=None):
        raise NotImplementedError("dlprov's MLflow store: search_datasets (MLflow's evaluation "
                                  "datasets) is not supported; run inputs are recorded in "
                                  "itraindataset")

    # -- helpers ----------------------------------------------------------------------------
    def _live_run(self, run_id: str) -> LiveRun:
        found = self._live.get(run_id)
        if found is None:
            raise KeyError(f"run {run_id} was not started in this process through dlprov's "
                           f"MLflow store")
        return found

    def _flush(self) -> None:
        """Write what this process captured, so that the store answers with it."""
        if self._live:
            recorder_for(self.store).flush(wait=True, timeout=10)

    def _run_of(self, live: LiveRun):
        from mlflow.entities import Param, Run, RunData, RunInputs, RunTag
        info = RunInfo(run_id=live.run_id, experiment_id=live.experiment_id,
                       user_id=live.run.username or "", status=live.status,
                       start_time=live.start_time, end_time=live.end_time,
                       lifecycle_stage=LifecycleStage.ACTIVE, artifact_uri=live.artifact_uri,
                       run_name=live.run_name)
        with live.lock:
            data = RunData(metrics=[Metric(x.key, x.value, x.timestamp, x.step)
                                    for x in live.metrics.values()],
                           params=[Param(k, v) for k, v in live.params.items()],
                           tags=[RunTag(k, v) for k, v in live.tags.items()])
            inputs = RunInputs(dataset_inputs=list(live.inputs))
        return Run(info, data, inputs)


def _default_artifacts(store: Store) -> str:
    """``mlartifacts`` beside an SQLite store, else in the working directory."""
    if store.backend == "sqlite":
        from sqlalchemy.engine import make_url
        database = make_url(store.url).database
        if database and database != ":memory:":
            return Path(os.path.abspath(database)).parent.joinpath("mlartifacts").as_uri()
    return Path.cwd().joinpath("mlartifacts").as_uri()


def _not_implemented(name: str):
    def method(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"dlprov's MLflow store does not implement {name} (dlprov "
                                  f"keeps runs, parameters, metrics, tags, inputs and models)")
    method.__name__ = name
    return method


# AbstractStore's abstract methods are not enforced (its metaclass line is Python 2's): each
# one this store lacks would silently return None. Make them say so.
for _name in dir(AbstractStore):
    _found = getattr(AbstractStore, _name, None)
    if getattr(_found, "__isabstractmethod__", False) and _name not in DlprovTrackingStore.__dict__:
        setattr(DlprovTrackingStore, _name, _not_implemented(_name))
