"""What every framework integration records, once: hyperparameters in ``itrain`` (one name each:
``lr`` given is ``learning_rate``), the data the training used in ``itraindataset``
(:mod:`~dlprov.integrations.data`), per-epoch metrics and learning rate (``lr``) in ``otrain``,
the trained model in ``otrainedmodel`` (and ``trained_model``), test metrics in ``otest``, as
the DLProv paper's DL dataflow does; metrics logged under a framework's names (``test_acc``) are
also recorded under the paper's (:data:`CONVENTIONAL_NAMES`).

Names become columns through :mod:`~dlprov.integrations.columns` (names that clean alike get
distinct columns, each recording the name it stands for); metric values through
:mod:`~dlprov.integrations.metrics` (numbers and text as they are, small tensors element by
element, the rest refused). Nothing is left out without a warning: recurring ones are
rate-limited (:data:`throttle`). Integrations call this from framework hooks; a provenance
problem there is logged, every time (rate-limited), and never stops training (:func:`guarded`).
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, TypeVar

from dlprov.capture.run import Run
from dlprov.capture.run import run as start_run
from dlprov.capture.task import Task
from dlprov.errors import NameRejected, SpecError, ValueRejected
from dlprov.integrations.columns import assign_columns, attribute_key, label_of, name_key
from dlprov.integrations.data import ATTRIBUTES as DATA_ATTRIBUTES
from dlprov.integrations.data import TRAINING_DATA, DataElement, training_data
from dlprov.integrations.metrics import NotStorable, metric_parts
from dlprov.integrations.throttle import Throttle
from dlprov.model.names import (  # noqa: F401  (attribute_name: the integrations' name rule)
    ITRAIN,
    OTEST,
    OTRAIN,
    OTRAINEDMODEL,
    TEST,
    TRAIN,
    attribute_name,
)
from dlprov.model.spec import Attribute, AttributeType
from dlprov.model.values import converter, infer_type

log = logging.getLogger("dlprov.integrations")

#: The integrations' recurring warnings (a failing hook, a metric not stored as given): each
#: kind logged the first time, then at most every ``throttle.interval`` seconds with a count.
throttle = Throttle(log)
atexit.register(throttle.flush)  # the counts not told yet

# The hyperparameters of the paper's Listing 2, by their Keras-Prov keys.
OPTIMIZER_NAME, LEARNING_RATE, DECAY, MOMENTUM = ("OPTIMIZER_NAME", "LEARNING_RATE", "DECAY",
                                                 "MOMENTUM")
NUM_EPOCHS, BATCH_SIZE, NUM_LAYERS = "NUM_EPOCHS", "BATCH_SIZE", "NUM_LAYERS"
HYPERPARAMETERS = (OPTIMIZER_NAME, LEARNING_RATE, DECAY, MOMENTUM, NUM_EPOCHS, BATCH_SIZE,
                   NUM_LAYERS)

#: The per-epoch learning rate's column in ``otrain`` (itrain's starting rate is
#: ``learning_rate``).
LR = "lr"

#: Conventional metric names of the paper's questions (Q3: ``otrain.accuracy``; Q4, Q5:
#: ``otest.accuracy``; Q6: ``otest.loss``) and the names frameworks log the same measure under.
#: Where a set's metrics lack the conventional name and hold exactly one of its aliases, that
#: value is recorded under the conventional name too (never a value computed by dlprov).
CONVENTIONAL_NAMES = {
    OTRAIN: {"accuracy": ("train_accuracy", "train_acc", "acc")},
    OTEST: {"accuracy": ("test_accuracy", "test_acc", "acc"), "loss": ("test_loss",)},
}

_EPOCH_ATTRIBUTES = (Attribute("timestamp", AttributeType.TIMESTAMP),
                     Attribute("epoch", AttributeType.NUMERIC),
                     Attribute("elapsed_time", AttributeType.NUMERIC))
_TEST_ATTRIBUTES = (Attribute("timestamp", AttributeType.TIMESTAMP),)
F = TypeVar("F", bound=Callable[..., Any])


def guarded(method: F) -> F:
    """Run a hook; if provenance fails, log it (each time, rate-limited per hook and error
    type: see :data:`throttle`) instead of raising it into training."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - provenance must never stop training
            name, kind = method.__qualname__, type(exc).__name__
            # the text, not the exception: a counted one must not keep the loop's frames alive
            throttle.warn(("failed", name, kind), "dlprov: %s failed, training goes on: %s: %s",
                          name, kind, str(exc))
            return None
    return wrapper  # type: ignore[return-value]


#: One name per hyperparameter: a hyperparameter given under the key is recorded under the value
#: (a LightningModule's ``lr`` is the ``learning_rate`` that Q1 asks about).
HYPERPARAMETER_ALIASES = {"lr": "learning_rate"}


def merge_names(*mappings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The entries of ``mappings``, a later one replacing an earlier one of the same name in
    any case: ``learning_rate`` given replaces the ``LEARNING_RATE`` derived. A name of
    :data:`HYPERPARAMETER_ALIASES` (``lr``) is recorded under its conventional name."""
    found: dict[str, Any] = {}
    names: dict[str, str] = {}
    for mapping in mappings:
        for name, value in (mapping or {}).items():
            if isinstance(name, str):
                name = HYPERPARAMETER_ALIASES.get(name_key(name), name)
            earlier = names.get(name_key(label_of(name)))
            if earlier is not None:
                del found[earlier]
            names[name_key(label_of(name))] = name
            found[name] = value
    return found


class TrainingCapture:
    """One training (and optional test) of a model inside a run.

    Give ``run`` to capture into an existing run (its other tasks, e.g. data preparation, can be
    listed in ``depends_on``), else a run of ``dataflow_tag`` is started and ended here.
    """

    def __init__(self, dataflow_tag: str | None = None, *, run: Run | None = None,
                 depends_on: Iterable[Task] = (), uses: Iterable[str] | None = None,
                 **run_options: Any) -> None:
        if run is None and dataflow_tag is None:
            raise ValueError("give a dataflow tag or a run")
        self._own_run = run is None
        self.run = run or start_run(dataflow_tag, **run_options)
        self.depends_on, self.uses = list(depends_on), uses
        self.train_task: Task | None = None
        self.test_task: Task | None = None
        self.model_id: str | None = None
        self._declared_sets: set[str] = set()
        self._plain_columns: dict[str, dict[str, str]] = {}  # per set: metric name -> column
        self._store_unreadable = False

    # -- training ---------------------------------------------------------------------------
    def start_training(self, hyperparameters: Mapping[str, Any], data: Any = None) -> Task:
        """Start the train task and record ``hyperparameters`` (one ``itrain`` element; None
        values are left out) and the ``data`` it used (see :mod:`~dlprov.integrations.data`:
        an element of ``itraindataset`` each, or the use of a step's output)."""
        found = self._training_data(data)
        depends_on, uses = self.depends_on, self.uses
        producers = {e.producer[0].key: e.producer[0] for e in found if e.producer}
        if producers:  # as a step after another: depend on it, use the set it made
            extra = [t for t in depends_on if t.key not in producers]
            used = {e.producer[1] for e in found if e.producer}
            used |= set().union(*(t.produced for t in extra)) if uses is None else set(uses)
            depends_on, uses = [*producers.values(), *extra], sorted(used)
        self.train_task = self.run.task(TRAIN, depends_on=depends_on, uses=uses)
        values = self._labelled(ITRAIN, "hyperparameter",
                                ((k, v) for k, v in merge_names(hyperparameters).items()
                                 if v is not None))
        row, _ = self._columns(ITRAIN, "hyperparameter", values)
        if row:
            self.train_task.input(ITRAIN, **row)
        self._record_data([e for e in found if e.producer is None])
        return self.train_task

    def record_data(self, data: Any) -> None:
        """Record more data the running training used (validation data a framework loads
        once validation starts): an element of ``itraindataset`` each, described even if a
        step produced it (the train task's dependencies were fixed when it started)."""
        self._record_data(self._training_data(data, producers=False))

    def _record_data(self, found: list[DataElement]) -> None:
        if found:
            self.run.declare_set(TRAINING_DATA, DATA_ATTRIBUTES)
            for element in found:
                self._task().input(TRAINING_DATA, **element.values)

    def _training_data(self, data: Any, producers: bool = True) -> list[DataElement]:
        if data is None:
            return []
        try:
            return training_data(data, self.run if producers else None)
        except Exception as exc:  # noqa: BLE001 - the training is recorded without its data
            throttle.warn(("data", type(exc).__name__), "dlprov: the data of the training "
                          "is not recorded: %s: %s", type(exc).__name__, str(exc))
            return []

    def epoch(self, epoch: int, metrics: Mapping[str, Any], elapsed_time: float | None,
              lr: float | None = None) -> None:
        """Record one epoch: its metrics (see :mod:`~dlprov.integrations.metrics`; with their
        :data:`CONVENTIONAL_NAMES`), its learning rate ``lr`` (column ``lr``, unless a metric
        of that name is given), its elapsed time and a timestamp."""
        own = {"timestamp": datetime.now(), "epoch": epoch, "elapsed_time": elapsed_time}
        metrics = conventional(OTRAIN, metrics)
        if lr is not None and not any(isinstance(n, str) and name_key(n) == LR
                                      for n in metrics):
            metrics[LR] = lr
        row = self.metric_row(OTRAIN, metrics, _EPOCH_ATTRIBUTES, own)
        self._task().output(OTRAIN, **own, **row)

    def trained_model(self, path: str | os.PathLike, model: Any = None,
                      framework: str | None = None, name: str | None = None) -> str:
        """Record the saved model (see :meth:`dlprov.Task.model`); returns its id."""
        self.model_id = self._task().model(path, model, framework=framework, name=name)
        return self.model_id

    def end_training(self, error: BaseException | str | None = None) -> None:
        if self.train_task is not None:
            self.train_task.end(error)

    # -- testing ----------------------------------------------------------------------------
    def test(self, metrics: Mapping[str, Any]) -> None:
        """Record test metrics (``otest``) in a test task that used the trained model."""
        own = {"timestamp": datetime.now()}
        row = self.metric_row(OTEST, conventional(OTEST, metrics), _TEST_ATTRIBUTES, own)
        if self.test_task is None:
            produced = self.train_task.produced if self.train_task else set()
            self.test_task = self.run.task(
                TEST, depends_on=[self.train_task] if self.train_task else [],
                uses=[OTRAINEDMODEL] if OTRAINEDMODEL in produced else None)
        self.test_task.output(OTEST, **own, **row)

    def end_test(self, error: BaseException | str | None = None) -> None:
        """End the test task; the next :meth:`test` starts a new one (one per evaluation)."""
        if self.test_task is not None:
            self.test_task.end(error)
            self.test_task = None

    # -- end --------------------------------------------------------------------------------
    def close(self, error: BaseException | str | None = None) -> None:
        """End open tasks, and the run if this object started it; log the warnings counted
        but not told yet."""
        try:
            self.end_training(error)
            self.end_test(error)
            if self._own_run:
                self.run.end(error)
        finally:
            throttle.flush()

    def _task(self) -> Task:
        if self.train_task is None:
            self.start_training({})
        return self.train_task  # type: ignore[return-value]

    # -- names and values -------------------------------------------------------------------
    def metric_row(self, set_tag: str, metrics: Mapping[str, Any], own: Iterable[Attribute],
                   own_values: Mapping[str, Any]) -> dict[str, Any]:
        """``metrics`` as one element of ``set_tag`` (by column), next to the attributes dlprov
        records itself (``own``, with ``own_values``); every metric left out or split is told
        in a warning."""
        fast = self._plain_columns.get(set_tag)
        row = _plain_row(metrics, fast) if fast is not None else None
        if row is not None:
            return row
        own = tuple(own)
        split: dict[str, tuple[str, list[str]]] = {}
        pairs = []
        for name, value in metrics.items():
            label = label_of(name)
            try:
                parts, what = metric_parts(value)
            except NotStorable as exc:
                self._refuse(set_tag, "metric", label, str(exc))
                continue
            if name_key(label) in own_values:
                if parts != [("", _plain(own_values[name_key(label)]))]:
                    self._refuse(set_tag, "metric", label, "dlprov records an attribute of "
                                 "that name itself; log the metric under another name")
                continue
            pairs += [(label + suffix, part) for suffix, part in parts]
            if what is not None:
                split[label] = (what, [label + suffix for suffix, _ in parts])
        row, columns = self._columns(set_tag, "metric", self._labelled(set_tag, "metric", pairs),
                                     own)
        for label, (what, labels) in split.items():
            throttle.warn(("split", set_tag, label),
                          "dlprov: set %r: metric %r is %s: stored element by element in %s",
                          set_tag, label, what, ", ".join(columns[n] for n in labels
                                                          if columns.get(n) in row))
        self._remember_plain(set_tag, metrics, columns, row)
        return row

    def _remember_plain(self, set_tag: str, metrics: Mapping[str, Any], columns: dict[str, str],
                        row: dict[str, Any]) -> None:
        """Remember the columns of the metrics that were plain numbers in NaN-tolerant number
        columns: the next batch with only those takes :func:`_plain_row`, a dict lookup per
        metric (a name's column never changes: the spec only grows)."""
        fast = self._plain_columns.setdefault(set_tag, {})
        with self.run.book.lock:
            attributes = self.run.book.spec.sets[set_tag].attributes
            for name, value in metrics.items():
                column = columns.get(label_of(name)) if isinstance(name, str) else None
                attribute = attributes.get(column) if column in row else None
                if attribute is not None and attribute.type is AttributeType.NUMERIC \
                        and attribute.allow_nan and _scalar(value) is not None:
                    fast[name] = column

    def _labelled(self, set_tag: str, what: str,
                  pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
        """The values by label; of two names that are one (they differ in case) the later is
        kept, with a warning."""
        found: dict[str, Any] = {}
        keys: dict[str, str] = {}
        for name, value in pairs:
            label = label_of(name)
            earlier = keys.get(name_key(label))
            if earlier is not None:
                found.pop(earlier)
                self._refuse(set_tag, what, earlier, f"it is the same name as {label!r} "
                             f"(names are case-insensitive); the value of {label!r} is kept")
            keys[name_key(label)] = label
            found[label] = value
        return found

    def _columns(self, set_tag: str, what: str, values: Mapping[str, Any],
                 own: Iterable[Attribute] = ()) -> tuple[dict[str, Any], dict[str, str]]:
        """(row by column, column of each label) for ``values`` by label; declares, under the
        spec book's lock (so that threads and captures sharing the dataflow agree), the
        columns new to the set with the names they stand for, and ``own`` on first use."""
        book, own = self.run.book, list(own)
        self._learn_columns(set_tag, values)
        with book.lock:
            known = book.spec.sets.get(set_tag)
            attributes = {**{a.name: a for a in own},  # taken, even before they are declared
                          **(known.attributes if known is not None else {})}
            columns = assign_columns(attributes, values)
            new = [] if set_tag in self._declared_sets else own
            row = {}
            for label, value in values.items():
                column, attribute = columns[label], attributes.get(columns[label])
                try:
                    if attribute is None:
                        kind = infer_type(set_tag, column, value)
                        attribute = Attribute(column, kind, label=label,
                                              allow_nan=kind is AttributeType.NUMERIC)
                        row[column] = _fit(set_tag, attribute, value)
                        new.append(attribute)
                        continue
                    row[column] = _fit(set_tag, attribute, value)
                except (NameRejected, SpecError, ValueRejected) as exc:
                    self._refuse(set_tag, what, label, str(exc))
                    continue
                if attribute.type is AttributeType.NUMERIC and not attribute.allow_nan:
                    # a diverging training's NaN or inf is kept, not refused
                    new.append(Attribute(column, AttributeType.NUMERIC, allow_nan=True,
                                         label=attribute.label))
            if new or set_tag not in self._declared_sets:
                self.run.declare_set(set_tag, new)
                self._declared_sets.add(set_tag)
        return row, columns

    def _learn_columns(self, set_tag: str, labels: Iterable[str]) -> None:
        """Before choosing columns for names the set does not know yet, learn those other
        processes added since this process read the spec: a name then finds the column
        another process chose for it (one read of the store, only when names are new)."""
        book = self.run.book
        with book.lock:
            known = book.spec.sets.get(set_tag)
            keys = {attribute_key(a) for a in known.attributes.values()} if known else set()
        if self._store_unreadable or (
                known is not None and all(name_key(label) in keys for label in labels)):
            return
        try:
            stored = self.run.store.load_spec(self.run.df_tag)
            if stored is not None:
                book.merge(stored)
        except Exception as exc:  # noqa: BLE001 - an unreadable store: choose from what is known
            # and do not wait on it again in this training
            self._store_unreadable = True
            log.warning("dlprov: cannot read the spec of %r (%s: %s): new metric names get "
                        "their columns from this process's spec only", self.run.df_tag,
                        type(exc).__name__, exc)

    @staticmethod
    def _refuse(set_tag: str, what: str, label: str, reason: str) -> None:
        throttle.warn(("left out", set_tag, what, label),
                      "dlprov: set %r: %s %r left out: %s", set_tag, what, label, reason)


def conventional(set_tag: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` with the :data:`CONVENTIONAL_NAMES` of ``set_tag`` they lack, each the
    value of its one alias present (none where there are none or several)."""
    metrics = dict(metrics)
    names = CONVENTIONAL_NAMES.get(set_tag)
    if not names:
        return metrics
    keys = {name_key(n): n for n in metrics if isinstance(n, str)}
    for name, aliases in names.items():
        present = [keys[a] for a in aliases if a in keys]
        if name not in keys and len(present) == 1:
            metrics[name] = metrics[present[0]]
    return metrics


def _fit(set_tag: str, attribute: Attribute, value: Any) -> Any:
    """``value`` as ``attribute`` stores it; a number goes into a text column as its text."""
    if attribute.type is AttributeType.TEXT and isinstance(value, float):
        return repr(value)
    return converter(set_tag, attribute)(value)


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float)) else value


def _scalar(value: Any) -> float | int | None:
    """A plain number, or a 0-d tensor's or array's, else None."""
    kind = type(value)
    if kind is float or kind is int:
        return value
    if getattr(value, "ndim", None) == 0:
        try:
            value = value.item()
        except Exception:  # noqa: BLE001 - not a number after all: the full path tells why
            return None
        if type(value) is float or type(value) is int:
            return value
    return None


def _plain_row(metrics: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, Any] | None:
    """The row of a batch whose metrics are all plain numbers with known columns (the usual
    case, every batch), else None: then the full path names, checks and tells."""
    row = {}
    for name, value in metrics.items():
        column = columns.get(name)
        if column is None:
            return None
        value = _scalar(value)
        if value is None:
            return None
        row[column] = value
    return row if len(row) == len(metrics) else None  # two names one column: the full path
