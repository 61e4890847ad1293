"""The DfAnalyzer-compatible API (the original ``dfa_lib_python``), a thin layer over :class:`Run`.

Mapping onto the core: ``Dataflow.save()`` checks the declaration and registers it in this process
(no I/O). The first Task of an ``exec_tag`` opens one core :class:`Run` (``user`` = the email) that
sends the spec to the store; all Tasks of that exec_tag share it, so two exec tags are two
independent executions. Open executions end at interpreter exit, or now with :func:`end_execution`.
``Task.begin()`` starts a core task depending on the core tasks of its ``dependency`` and using the
sets its transformation takes from theirs: the store stamps ``<transformation>_task_id`` on the
rows used, so a DataSet of such a set stores nothing, as in the original. Element values match the
set's attributes in declaration order.

Fixed on purpose: every Element of every DataSet is kept; a wrong number of values, an unknown set
or a bad value raises at ``add_dataset`` and stores nothing of that call (the original dropped it
silently); None is stored as NULL, NaN where the attribute allows it; ``sub_id`` is stored; a task
can end failed.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple, Sequence

from dlprov.capture.dfa_spec import (
    Dataflow,
    DataSet,
    Dependency,
    TaskStatus,
    _task_id,
    saved_dataflows,
)
from dlprov.capture.run import Run
from dlprov.capture.specbook import specbook_for
from dlprov.capture.task import RUNNING
from dlprov.capture.task import Task as CoreTask
from dlprov.errors import NotFound, SpecError
from dlprov.model import spec as m
from dlprov.model.names import check_name
from dlprov.store.store import as_store

log = logging.getLogger("dlprov.dfa")

class _Role(NamedTuple):
    role: str               # "input" or "output"
    producer: str | None    # for an input passed on from another transformation


@dataclass
class _Execution:
    run: Run
    spec: m.DataflowSpec    # the declaration that positional values are matched against
    tasks: dict[tuple[int, str | None], "Task"] = field(default_factory=dict)


_executions: dict[str, _Execution] = {}
_ended: set[tuple[str, str]] = set()  # (store URL, exec_tag): the store keeps tags unique
_lock = threading.RLock()


class Task:
    """One task of transformation ``transformation_tag`` in execution ``exec_tag``.

    ``dataflow`` is a :class:`Dataflow` or the tag of one saved in this process (else its stored
    spec). ``dependency`` is a Task, a list of Tasks or a :class:`Dependency`. Add DataSets, then
    ``begin()``; ``save()`` records DataSets added since; ``end()`` records them and ends the
    task: FAILED if ``set_status(TaskStatus.FAILED)`` was called or an ``error`` is given.
    ``resource`` is kept on the object but not stored (the core's ``Run.task`` lacks it).
    """

    def __init__(self, id: int | str, dataflow: Dataflow | str, exec_tag: str,
                 transformation_tag: str, sub_id: str = "",
                 dependency: "Task | Sequence[Task] | Dependency | None" = None,
                 workspace: str = "", resource: str = "", output: str = "",
                 error: str = "") -> None:
        self.id = _task_id(id)
        self.exec_tag = exec_tag
        self.transformation = check_name("transformation", transformation_tag)
        self.sub_id = str(sub_id) if sub_id not in ("", None) else None
        self.workspace, self.resource = workspace or None, resource or None
        self.output, self.error = output or None, error or None
        self.status = TaskStatus.READY
        self.dependency = dependency
        self._pending: list[tuple[str, str, list[dict[str, Any]]]] = []
        self._core: CoreTask | None = None
        self._execution = _execution_for(dataflow, exec_tag, self.transformation)
        self._sets = _roles(self._execution.spec, self.transformation)
        with _lock:
            self._execution.tasks[(self.id, self.sub_id)] = self

    @property
    def run(self) -> Run:
        """The core run of this task's execution (``run.flush()`` waits for the store)."""
        return self._execution.run

    @property
    def dependency(self) -> "list[Task] | Dependency":
        return self._dependency

    @dependency.setter
    def dependency(self, value: "Task | Sequence[Task] | Dependency | None") -> None:
        if value is None or isinstance(value, Dependency):
            self._dependency = value or []
            return
        tasks = [value] if isinstance(value, Task) else list(value)
        for task in tasks:
            if not isinstance(task, Task):
                raise TypeError(f"dependency takes Tasks or a Dependency, "
                                f"got {type(task).__name__}")
        self._dependency = tasks

    def add_dependency(self, dependency: Dependency) -> None:
        self.dependency = dependency

    def set_status(self, status: TaskStatus | str) -> None:
        self.status = TaskStatus(status.upper() if isinstance(status, str) else status)

    # -- datasets --------------------------------------------------------------------------
    def add_dataset(self, dataset: DataSet) -> None:
        """Check ``dataset`` against its set and keep it for the next begin/save/end."""
        self.set_datasets([dataset])

    def set_datasets(self, datasets: Iterable[DataSet]) -> None:
        """Add several DataSets: all of them, or none if one does not fit its set."""
        if self._core is not None and self._core.status != RUNNING:
            raise self._core.ended_error()
        checked = [self._check(dataset) for dataset in datasets]
        self._pending.extend(c for c in checked if c is not None)

    def _check(self, dataset: DataSet) -> tuple[str, str, list[dict[str, Any]]] | None:
        if not isinstance(dataset, DataSet):
            raise TypeError(f"add_dataset takes a DataSet, got {type(dataset).__name__}")
        found = self._sets.get(dataset.tag)
        if found is None:
            raise SpecError(
                f"transformation {self.transformation!r} of dataflow {self.run.df_tag!r} has no "
                f"set {dataset.tag!r}; its sets are {sorted(self._sets)}")
        if found.producer is not None:
            return None  # its rows are those the producer stored; begin() marks them used
        attributes = list(self._execution.spec.sets[dataset.tag].attributes.values())
        converters = self.run.book.converters[dataset.tag]
        rows = []
        for number, element in enumerate(dataset.elements, 1):
            values = element.values
            if len(values) != len(attributes):
                raise SpecError(
                    f"set {dataset.tag!r} has {len(attributes)} attributes "
                    f"{[a.name for a in attributes]}, but element {number} of the DataSet gives "
                    f"{len(values)} values {values!r}; nothing of this DataSet was recorded")
            rows.append({a.name: converters[a.name](_as_original(a.type, v))
                         for a, v in zip(attributes, values)})
        return found.role, dataset.tag, rows

    def _record(self) -> None:
        pending, self._pending = self._pending, []
        for role, set_tag, rows in pending:
            record = self._core.input if role == "input" else self._core.output
            for row in rows:
                record(set_tag, **row)

    # -- lifecycle -------------------------------------------------------------------------
    def begin(self) -> None:
        """Start the task (once) and record the DataSets added so far."""
        if self._core is None:
            depends_on = [t._started_core(self) for t in self._dependency_tasks()]
            uses = sorted({s for c in depends_on for s in c.produced
                           if self._sets.get(s) == _Role("input", c.transformation)})
            self._core = self.run.task(self.transformation, depends_on=depends_on, uses=uses,
                                       sub_id=self.sub_id, workspace=self.workspace,
                                       identifier=self.id)
            if self.status is TaskStatus.READY:
                self.status = TaskStatus.RUNNING
        self._record()

    def save(self) -> None:
        """Record the DataSets added since the last begin/save (beginning the task if need be)."""
        self.begin()

    def end(self, error: BaseException | str | None = None) -> None:
        """Record the DataSets added since, and end the task: failed if its status was set to
        FAILED or an ``error`` is given (here or as ``Task(error=...)``), else finished."""
        self.begin()
        error = error if error is not None else self.error
        if error is None and self.status is TaskStatus.FAILED:
            error = "task set to FAILED"
        self._core.end(error, output=self.output)
        self.status = TaskStatus.FAILED if error is not None else TaskStatus.FINISHED

    def __enter__(self) -> "Task":
        self.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(exc)

    def _started_core(self, consumer: "Task") -> CoreTask:
        if self._core is None:
            raise RuntimeError(f"task {consumer.id} ({consumer.transformation!r}) depends on task "
                            f"{self.id} ({self.transformation!r}), which has not begun: call "
                            f"its begin() first")
        return self._core

    def _dependency_tasks(self) -> "list[Task]":
        if not isinstance(self._dependency, Dependency):
            return self._dependency
        dep, tasks = self._dependency, []
        paired = len(dep.tags) == len(dep.ids)
        with _lock:
            known = list(self._execution.tasks.values())
        for i, task_id in enumerate(dep.ids):
            tags = [dep.tags[i]] if paired else dep.tags
            found = [t for t in known if t.id == task_id and (not tags or t.transformation in tags)]
            if not found:
                raise NotFound(f"task {self.id} depends on task {task_id} {tags or ''} of "
                               f"execution {self.exec_tag!r}, but no such Task was made in this "
                               f"process; pass the Task objects as dependency")
            tasks += found
        return tasks

    def __repr__(self) -> str:
        return (f"<dfa Task {self.id} {self.transformation!r} of {self.exec_tag!r}: "
                f"{self.status.value}>")

def _roles(spec: m.DataflowSpec, transformation: str) -> dict[str, _Role]:
    if transformation not in spec.transformations:
        raise SpecError(f"dataflow {spec.tag!r} has no transformation {transformation!r}; it has "
                        f"{spec.transformations}")
    roles = {d.set_tag: _Role("input", d.previous) for d in spec.dependencies
             if d.following == transformation}
    roles.update({d.set_tag: _Role("output", None) for d in spec.dependencies
                  if d.previous == transformation and d.following is None})
    return roles


def _as_original(kind: m.AttributeType, value: Any) -> Any:
    """The original sent every value as text: keep taking numbers as text and text as numbers."""
    if value is None:
        return None
    if kind is m.AttributeType.NUMERIC and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # the converter rejects it, naming the set and attribute
    if kind is m.AttributeType.TEXT and not isinstance(value, str):
        return str(value)
    if kind is m.AttributeType.FILE and not isinstance(value, (str, os.PathLike)):
        return str(value)
    return value


def _execution_for(dataflow: Dataflow | str, exec_tag: str, transformation: str) -> _Execution:
    """The open execution ``exec_tag``, or a new one (a core Run) of ``dataflow`` if it has
    ``transformation`` (checked first, so that a typo starts no run)."""
    df_tag = dataflow.tag if isinstance(dataflow, Dataflow) else check_name("dataflow", dataflow)
    with _lock:
        found = _executions.get(exec_tag)
        if found is not None:
            if found.run.df_tag != df_tag:
                raise ValueError(f"execution {exec_tag!r} is of dataflow {found.run.df_tag!r}, "
                                 f"not {df_tag!r}; use another exec_tag")
            return found  # the Task checks its transformation
        declared = dataflow if isinstance(dataflow, Dataflow) else saved_dataflows.get(df_tag)
        store = as_store(declared.store if declared is not None else None)
        if (store.url, exec_tag) in _ended:
            raise ValueError(f"execution {exec_tag!r} has ended; use a new exec_tag")
        if declared is not None:
            spec = declared.spec()
            _roles(spec, transformation)
            run = Run(df_tag, exec_tag=exec_tag, store=store, spec=spec, user=declared.email,
                      email=declared.email)
        else:  # declared by another process: use the stored spec
            spec = m.DataflowSpec.from_dict(specbook_for(store, df_tag).snapshot())
            if not spec.transformations:
                raise SpecError(f"dataflow {df_tag!r} is not declared: make it with "
                                f"Dataflow({df_tag!r}, ...) and call save() before its Tasks")
            _roles(spec, transformation)
            run = Run(df_tag, exec_tag=exec_tag, store=store)
        found = _executions[exec_tag] = _Execution(run, spec)
        return found


def end_execution(exec_tag: str | None = None, error: BaseException | str | None = None) -> None:
    """End execution ``exec_tag`` (every open one if None) and wait until its records are
    written. Tasks still running end with it. Without this, executions end at interpreter exit."""
    with _lock:
        if exec_tag is not None and exec_tag not in _executions \
                and all(tag != exec_tag for _, tag in _ended):
            raise NotFound(f"no execution {exec_tag!r} was started in this process")
        tags = list(_executions) if exec_tag is None else [exec_tag]
        executions = [_executions.pop(t) for t in tags if t in _executions]
        _ended.update((e.run.store.url, e.run.exec_tag) for e in executions)
    for execution in executions:
        execution.run.end(error)


def _end_at_exit() -> None:
    with _lock:
        executions = list(_executions.values())
        _executions.clear()
    for execution in executions:
        try:
            left = [t._core for t in execution.tasks.values()
                    if t._core is not None and t._core.status == RUNNING]
            error = "the process exited before Task.end() was called" if left else None
            for task in left:
                task.end(error)
            execution.run.end(error)
        except Exception:  # noqa: BLE001 - exiting anyway; say what was lost
            log.exception("dlprov: could not end execution %r at exit", execution.run.exec_tag)


atexit.register(_end_at_exit)  # after the recorder's: runs before it, so the records still go
