"""One MLflow run captured live into dlprov (the tracking-store plugin's write side).

An MLflow run is a :class:`dlprov.Run` (its key is the MLflow run id) with a ``train`` task:
each logged metric point is an ``otrain`` element (``step``, ``timestamp`` and the metric's
column; points logged together share one element), metrics of a test or evaluation context
(:data:`~.mapping.TEST_PREFIXES`) ``otest`` elements of a ``test`` task, dataset inputs
``itraindataset`` elements, a finalized logged model a trained model. Parameters arrive one
by one but are one ``itrain`` element: they are written when the run ends (and before a
model is recorded). Everything goes through the process's recorder: nothing here waits on
the store. The MLflow view of the run (parameters, tags, latest metrics) is also kept here,
so that MLflow's reads of a live run need no store.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Iterable

from dlprov.capture.run import Run
from dlprov.integrations.common import HYPERPARAMETER_ALIASES, TrainingCapture, conventional
from dlprov.integrations.data import TRAINING_DATA
from dlprov.integrations.mlflow import mapping as m
from dlprov.model import records as r
from dlprov.model.names import OTEST, OTRAIN, OTRAINEDMODEL, TEST
from dlprov.model.spec import Attribute, AttributeType

OWN = (Attribute("timestamp", AttributeType.TIMESTAMP), Attribute("step", AttributeType.NUMERIC))


class LiveRun:
    """The dlprov side of one MLflow run started in this process."""

    def __init__(self, run: Run, *, run_name: str, experiment_id: str, artifact_uri: str,
                 tags: dict[str, str], prefixes: tuple[str, ...]) -> None:
        self.run = run
        self.run_id = run.key
        self.run_name, self.experiment_id, self.artifact_uri = run_name, experiment_id, \
            artifact_uri
        self.prefixes = prefixes
        self.capture = TrainingCapture(run=run)
        self.train = self.capture.start_training({})
        self.test = None
        self.params: dict[str, str] = {}
        self.params_written: set[str] = set()
        self.tags: dict[str, str] = dict(tags)
        self.metrics: dict[str, Any] = {}  # key -> latest mlflow Metric
        self.history: dict[str, list[Any]] = {}
        self.inputs: list[Any] = []
        self.status = "RUNNING"
        self.start_time = int(run.start_time.timestamp() * 1000)
        self.end_time: int | None = None
        self.lock = threading.Lock()

    # -- writes -----------------------------------------------------------------------------
    def log(self, metrics: Iterable[Any], params: Iterable[Any], tags: Iterable[Any]) -> None:
        """What ``log_batch`` logged: metric points, parameters and tags."""
        with self.lock:
            for param in params:
                self.params[param.key] = param.value
            new_tags = {t.key: t.value for t in tags}
            if new_tags:
                self.tags.update(new_tags)
                self.run.put((r.ANNOTATION, self.run.exec_tag,
                              {"tags": m.tags_of(new_tags, {}, [])}))
            groups: dict[tuple[int, int, bool], dict[str, float]] = {}
            for metric in metrics:
                self.metrics[metric.key] = metric
                self.history.setdefault(metric.key, []).append(metric)
                test = m.is_test_metric(metric.key, self.prefixes)
                groups.setdefault((metric.step, metric.timestamp, test), {})[metric.key] = \
                    metric.value
            for (step, stamp, test), values in groups.items():
                self._point(step, stamp, values, test)

    def delete_tag(self, key: str) -> None:
        """Remove tag ``key`` from the run (and its execution)."""
        with self.lock:
            self.tags.pop(key, None)
            self.run.put((r.ANNOTATION, self.run.exec_tag, {"tags": {m.tag_key(key): None}}))

    def _point(self, step: int, stamp: int, values: dict[str, float], test: bool) -> None:
        own = {"timestamp": m.timestamp(stamp), "step": step}
        set_tag = OTEST if test else OTRAIN
        row = self.capture.metric_row(set_tag, conventional(set_tag, values), OWN, own)
        self._task(test).output(set_tag, **own, **row)

    def _task(self, test: bool):
        if not test:
            return self.train
        if self.test is None:
            self.test = self.run.task(TEST, depends_on=self.train, uses=[OTRAINEDMODEL]
                                      if OTRAINEDMODEL in self.train.produced else None)
        return self.test

    def log_inputs(self, datasets: Iterable[Any]) -> None:
        """Dataset inputs: ``itraindataset`` elements the training used (Q11)."""
        from dlprov.integrations.mlflow.importer import DATA_SET_ATTRIBUTES
        with self.lock:
            datasets = list(datasets)
            if datasets:
                self.run.declare_set(TRAINING_DATA, DATA_SET_ATTRIBUTES)
            for dataset_input in datasets:
                self.inputs.append(dataset_input)
                self.train.input(TRAINING_DATA, **m.dataset_values(dataset_input))

    def write_params(self) -> None:
        """The parameters logged so far and not yet written, as one ``itrain`` element."""
        fresh = {k: m.param_value(v) for k, v in self.params.items()
                 if k not in self.params_written}
        for name, conventional_name in HYPERPARAMETER_ALIASES.items():
            # lr is also learning_rate (Q1 asks for it), and stays lr for MLflow's readers
            if name in fresh and conventional_name not in self.params:
                fresh[conventional_name] = fresh[name]
        if fresh:
            self.params_written |= set(fresh)
            values = self.capture._labelled("itrain", "hyperparameter", fresh.items())
            row, _ = self.capture._columns("itrain", "hyperparameter",
                                           {k: v for k, v in values.items() if v is not None})
            if row:
                self.train.input("itrain", **row)

    def model(self, path: str, name: str, model_id: str, framework: str | None) -> None:
        """A finalized logged model: the training's trained model, with MLflow's id."""
        with self.lock:
            self.write_params()
            run = self.run
            # Task.model asks its run for the new model's key: give it MLflow's id.
            run.new_key = lambda: model_id  # type: ignore[method-assign]
            try:
                self.train.model(path, name=name, framework=framework)
            finally:
                del run.new_key

    def end(self, status: str, end_time: int | None) -> None:
        """End the run (``FINISHED``, ``FAILED``, ``KILLED``) without waiting for the store."""
        with self.lock:
            if self.status != "RUNNING":
                return
            self.write_params()
            self.status = status
            self.end_time = end_time or int(time.time() * 1000)
            error = None if status == "FINISHED" else f"MLflow run {status}"
            if self.test is not None:
                self.test.end(error)
            self.train.end(error)
            self.run.end(error, wait=False)
