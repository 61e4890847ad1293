"""The DfAnalyzer-compatible API (the original ``dfa_lib_python``), a thin layer over :class:`Run`.

Mapping onto the core: ``Dataflow.save()`` checks the declaration and registers it in this process
(no I/O). The first Task of an ``exec_tag`` opens one core :class:`Run` (``user`` = the email) that
sends the spec to the store; all Tasks of that exec_tag share it, so two exec tags are two
independent executions. Open executions end at interpreter exit, or now with :func:`end_execution`.
``Task.begin()`` starts a core task depending on the core tasks of its ``dependency`` and using the
sets its transformation takes from theirs: the store stamps ``<transformation>_task_id`` on the
rows used, so a DataSet of such a set stores nothing, as in the original. Element values match the
set's attributes in declaration order.

Lenient, as the original client was: nothing the original accepted raises into the script. What
the declaration lacks is added and recorded with a warning (logged on ``dlprov.dfa``, kept in
``Task.warnings`` and in the task's ``output_msg``): an unknown transformation or set joins the
spec (a new version; an unknown set's attributes are ``value_1``..``value_n``, an input if added
before ``begin()``, else an output); an element with too few values stores NULL for the missing
ones, one with too many keeps the extras, and a value its attribute cannot hold is stored NULL and
kept as given, both as JSON in the set's text attribute ``dlprov_extra``; a dependency on a task
that does not exist (or has not begun) is recorded as unresolved and skipped; ``end()`` without
``begin()`` starts and ends the task at once (as it always did here). A script that dies leaves
its executions and running tasks failed, not finished. ``DLPROV_DFA_STRICT=1`` turns every
warning into the error it was.

Fixed on purpose: every Element of every DataSet is kept; None is stored as NULL, NaN where the
attribute allows it; ``sub_id`` and ``resource`` are stored; a task can end failed.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import sys
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
from dlprov.errors import DlprovError, NotFound, SpecError
from dlprov.model import records as r
from dlprov.model import spec as m
from dlprov.model.names import check_name
from dlprov.store.store import as_store

log = logging.getLogger("dlprov.dfa")

STRICT_ENV = "DLPROV_DFA_STRICT"
#: The text attribute that keeps, as JSON, values an element gave beyond its set's attributes
#: or that their attribute could not hold.
EXTRA = "dlprov_extra"


def strict() -> bool:
    """Whether warnings are errors (``DLPROV_DFA_STRICT=1``), as dlprov's own API has them."""
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")

class _Role(NamedTuple):
    role: str               # "input" or "output"
    producer: str | None    # for an input passed on from another transformation


@dataclass
class _Execution:
    run: Run
    spec: m.DataflowSpec    # the declaration that positional values are matched against
    tasks: dict[tuple[int, str | None], "Task"] = field(default_factory=dict)
    # Opened for a client by a server: left open at exit, for the client to go on with.
    keep_open: bool = False


_executions: dict[str, _Execution] = {}
_ended: set[tuple[str, str]] = set()  # (store URL, exec_tag): the store keeps tags unique
_lock = threading.RLock()


class Task:
    """One task of transformation ``transformation_tag`` in execution ``exec_tag``.

    ``dataflow`` is a :class:`Dataflow` or the tag of one saved in this process (else its stored
    spec, else a new dataflow). ``dependency`` is a Task, a list of Tasks or a
    :class:`Dependency`. Add DataSets, then ``begin()``; ``save()`` records DataSets added since;
    ``end()`` records them and ends the task: FAILED if ``set_status(TaskStatus.FAILED)`` was
    called or an ``error`` is given. What the declaration lacks is added with a warning (see the
    module); ``warnings`` lists them.
    """

    def __init__(self, id: int | str, dataflow: Dataflow | str, exec_tag: str,
                 transformation_tag: str, sub_id: str = "",
                 dependency: "Task | Sequence[Task] | Dependency | None" = None,
                 workspace: str = "", resource: str = "", output: str = "",
                 error: str = "") -> None:
        self.warnings: list[str] = []
        self.unresolved: list[str] = []
        self.resumed = False  # a task stored before this process joined its execution
        self._broken: str | None = None
        self._pending: list[tuple[str, str, list[dict[str, Any]]]] = []
        self._core: CoreTask | None = None
        self.exec_tag = exec_tag
        self.status = TaskStatus.READY
        self.output, self.error = output or None, error or None
        self.workspace, self.resource = workspace or None, resource or None
        self.sub_id = str(sub_id) if sub_id not in ("", None) else None
        self.transformation = str(transformation_tag).lower()
        self._dependency: "list[Task] | Dependency" = []
        try:
            self.id = _task_id(id)
            self.transformation = check_name("transformation", transformation_tag)
            self.dependency = dependency
            self._execution = _execution_for(dataflow, exec_tag, self.transformation,
                                             self._warn)
            self._known_transformation()
        except (DlprovError, ValueError, TypeError, RuntimeError) as exc:
            if strict():
                raise
            self._broken = str(exc)
            self._warn(f"task {id!r} ({transformation_tag!r}) of {exec_tag!r} records nothing: "
                       f"{exc}")
            return
        with _lock:
            self._execution.tasks[(self.id, self.sub_id)] = self

    def _warn(self, message: str, error: type[Exception] = SpecError, then: str = "") -> None:
        """Record a leniency (``message``, then what was done instead: ``then``); in strict
        mode, raise ``message`` as ``error``."""
        if strict():
            raise error(message)
        self._note(message + then)

    def _note(self, message: str) -> None:
        log.warning("dlprov: %s", message)
        self.warnings.append(message)

    def _known_transformation(self) -> None:
        book = self.run.book
        if self.transformation not in book.spec.transformations:
            self._warn(f"dataflow {book.spec.tag!r} has no transformation "
                       f"{self.transformation!r}; it has {book.spec.transformations}",
                       then="; it is added to the dataflow (a new version)")
            if book.add_transformation(self.transformation):
                self.run.send_spec()

    @property
    def _sets(self) -> dict[str, "_Role"]:
        return _roles(self.run.book.spec, self.transformation)

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
        self._guarded(setattr, self, "dependency", dependency)

    def set_status(self, status: TaskStatus | str) -> None:
        self.status = TaskStatus(status.upper() if isinstance(status, str) else status)

    def _guarded(self, call, *args) -> Any:
        """``call(*args)``, or, unless strict, a warning instead of an error into the script."""
        if self._broken is not None:
            return None
        try:
            return call(*args)
        except (DlprovError, ValueError, TypeError, RuntimeError) as exc:
            if strict():
                raise
            self._warn(f"task {self.id} ({self.transformation!r}) of {self.exec_tag!r}: {exc}")
            return None

    # -- datasets --------------------------------------------------------------------------
    def add_dataset(self, dataset: DataSet) -> None:
        """Check ``dataset`` against its set and keep it for the next begin/save/end."""
        self.set_datasets([dataset])

    def set_datasets(self, datasets: Iterable[DataSet]) -> None:
        """Add several DataSets (in strict mode: all of them, or none if one does not fit)."""
        self._guarded(self._set_datasets, list(datasets))

    def _set_datasets(self, datasets: list[DataSet]) -> None:
        if self._core is not None and self._core.status != RUNNING:
            raise self._core.ended_error()
        checked = [self._check(dataset) for dataset in datasets]
        self._pending.extend(c for c in checked if c is not None)

    def _check(self, dataset: DataSet) -> tuple[str, str, list[dict[str, Any]]] | None:
        if not isinstance(dataset, DataSet):
            raise TypeError(f"add_dataset takes a DataSet, got {type(dataset).__name__}")
        found = self._sets.get(dataset.tag)
        if found is None:
            found = self._add_set(dataset)
        if found.producer is not None:
            return None  # its rows are those the producer stored; begin() marks them used
        book = self.run.book
        attributes = list(book.spec.sets[dataset.tag].attributes.values())
        rows = []
        for number, element in enumerate(dataset.elements, 1):
            values = list(element.values)
            named = [a for a in attributes if a.name != EXTRA]
            extra: dict[str, Any] = {}
            if len(values) != len(named):
                self._warn(f"set {dataset.tag!r} has {len(named)} attributes "
                           f"{[a.name for a in named]}, but element {number} of the DataSet "
                           f"gives {len(values)} values {_short(values)}",
                           then="; the missing ones are stored NULL" if len(values) < len(named)
                           else f"; the extra ones are kept in {EXTRA!r}")
                if len(values) > len(named):
                    extra["extra"] = [_jsonable(v) for v in values[len(named):]]
            row = {}
            converters = book.converters[dataset.tag]
            for attribute, value in zip(named, values + [None] * (len(named) - len(values))):
                try:
                    row[attribute.name] = converters[attribute.name](
                        _as_original(attribute.type, value))
                except (DlprovError, ValueError, TypeError) as exc:
                    self._warn(str(exc), type(exc) if isinstance(exc, DlprovError)
                               else SpecError, then=f"; stored NULL, kept as given in {EXTRA!r}")
                    row[attribute.name] = None
                    extra[attribute.name] = _jsonable(value)
            if extra:
                self._extra_attribute(dataset.tag)
                row[EXTRA] = json.dumps(extra)
            rows.append(row)
        return found.role, dataset.tag, rows

    def _add_set(self, dataset: DataSet) -> "_Role":
        """Add an undeclared set to the spec, with a warning."""
        book, role = self.run.book, "input" if self._core is None else "output"
        known, width = book.spec.sets.get(dataset.tag), 0
        if strict():
            self._warn(f"transformation {self.transformation!r} of dataflow "
                       f"{self.run.df_tag!r} has no set {dataset.tag!r}; its sets are "
                       f"{sorted(self._sets)}")
        if known is None:
            width = max((len(e.values) for e in dataset.elements), default=0)
            book.declare_set(dataset.tag, [
                m.Attribute(f"value_{i}", _inferred(dataset, i - 1)) for i in range(1, width + 1)])
        self._warn(f"transformation {self.transformation!r} of dataflow {self.run.df_tag!r} has "
                   f"no set {dataset.tag!r}; its sets are {sorted(self._sets)}",
                   then=f"; it is added as its {role} (a new version)"
                   + ("" if known else f" with attributes value_1..value_{width}"))
        book.add_role(self.transformation, dataset.tag, role)
        self.run.send_spec()
        return _Role(role, None)

    def _extra_attribute(self, set_tag: str) -> None:
        if EXTRA not in self.run.book.spec.sets[set_tag].attributes:
            self.run.declare_set(set_tag, [m.Attribute(EXTRA, m.AttributeType.TEXT)])

    def _record(self) -> None:
        pending, self._pending = self._pending, []
        for role, set_tag, rows in pending:
            record = self._core.input if role == "input" else self._core.output
            for row in rows:
                record(set_tag, **row)

    # -- lifecycle -------------------------------------------------------------------------
    def begin(self) -> None:
        """Start the task (once) and record the DataSets added so far."""
        self._guarded(self._begin)

    def _begin(self) -> None:
        if self._core is None:
            depends_on = [c for c in (t._started_core(self) for t in self._dependency_tasks())
                          if c is not None]
            sets = self._sets
            uses = sorted({s for c in depends_on for s in c.produced
                           if sets.get(s) == _Role("input", c.transformation)})
            self._core = self.run.task(self.transformation, depends_on=depends_on, uses=uses,
                                       sub_id=self.sub_id, workspace=self.workspace,
                                       identifier=self.id, resource=self.resource)
            if self.status is TaskStatus.READY:
                self.status = TaskStatus.RUNNING
        self._record()

    def save(self) -> None:
        """Record the DataSets added since the last begin/save (beginning the task if need be)."""
        self.begin()

    def end(self, error: BaseException | str | None = None) -> None:
        """Record the DataSets added since, and end the task: failed if its status was set to
        FAILED or an ``error`` is given (here or as ``Task(error=...)``), else finished."""
        self._guarded(self._end, error)

    def _end(self, error: BaseException | str | None) -> None:
        self._begin()
        error = error if error is not None else self.error
        if error is None and self.status is TaskStatus.FAILED:
            error = "task set to FAILED"
        self._core.end(error, output=self._output())
        self.status = TaskStatus.FAILED if error is not None else TaskStatus.FINISHED

    def _output(self) -> str | None:
        """The client's output, then the warnings of this task (kept with it in the store)."""
        notes = [f"{r.TASK_WARNING}{w}" for w in self.warnings]
        return "\n".join([self.output] * bool(self.output) + notes) or None

    def __enter__(self) -> "Task":
        self.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(exc)

    def _started_core(self, consumer: "Task") -> CoreTask | None:
        if self._core is None:
            consumer._unresolved(
                f"task {consumer.id} ({consumer.transformation!r}) depends on task {self.id} "
                f"({self.transformation!r}), which has not begun: call its begin() first",
                RuntimeError)
        return self._core

    def _unresolved(self, message: str, error: type[Exception]) -> None:
        self._warn(message, error, then="; the dependency is recorded as unresolved")
        self.unresolved.append(message)

    def _dependency_tasks(self) -> "list[Task]":
        if not isinstance(self._dependency, Dependency):
            return [t for t in self._dependency if t._broken is None]
        dep, tasks = self._dependency, []
        paired = len(dep.tags) == len(dep.ids)
        with _lock:
            known = list(self._execution.tasks.values())
        for i, task_id in enumerate(dep.ids):
            tags = [dep.tags[i]] if paired else dep.tags
            found = [t for t in known if t.id == task_id and (not tags or t.transformation in tags)]
            if not found:
                self._unresolved(f"task {self.id} depends on task {task_id} {tags or ''} of "
                                 f"execution {self.exec_tag!r}, but no such Task was made in "
                                 f"this process", NotFound)
            tasks += found
        return tasks

    def __repr__(self) -> str:
        return (f"<dfa Task {getattr(self, 'id', '?')} {self.transformation!r} of "
                f"{self.exec_tag!r}: {self.status.value}>")


def resumed_task(exec_tag: str, identifier: int, sub_id: str | None,
                 found: tuple[str, str]) -> "Task":
    """The Task ``identifier`` (``sub_id``) of the open execution ``exec_tag``, stored before
    this process joined it as ``found`` (its key, its transformation), now recording into that
    stored task."""
    with _lock:
        execution = _executions[exec_tag]
    task = Task.__new__(Task)
    task.warnings, task.unresolved, task._broken, task._pending = [], [], None, []
    task.exec_tag, task.status, task.output, task.error = exec_tag, TaskStatus.RUNNING, None, None
    task.workspace = task.resource = None
    task.id, task.sub_id, task.transformation = identifier, sub_id, found[1]
    task._dependency, task._execution, task.resumed = [], execution, True
    task._core = CoreTask.joined(execution.run, found[0], found[1], identifier)
    task._core._joined = False  # this process ends it now: its end is recorded
    task._core.produced = set(task._core.run.book.spec.sets_of(found[1], "output"))
    with _lock:
        execution.tasks[(identifier, sub_id)] = task
    return task


def _short(values: list[Any]) -> str:
    text = repr(values)
    return text if len(text) <= 200 else text[:200] + "..."


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _inferred(dataset: DataSet, index: int) -> m.AttributeType:
    """NUMERIC if every value given at ``index`` is a number (or numeric text), else TEXT."""
    values = [e.values[index] for e in dataset.elements
              if index < len(e.values) and e.values[index] is not None]
    for value in values:
        if isinstance(value, bool):
            return m.AttributeType.TEXT
        try:
            float(value)
        except (TypeError, ValueError):
            return m.AttributeType.TEXT
    return m.AttributeType.NUMERIC if values else m.AttributeType.TEXT


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


def _execution_for(dataflow: Dataflow | str, exec_tag: str, transformation: str,
                   warn=None, *, resume: bool = False,
                   stored_key: str | None = None) -> _Execution:
    """The open execution ``exec_tag``, or a new one (a core Run) of ``dataflow``. In strict
    mode, ``dataflow`` must have ``transformation`` (checked first, so that a typo starts no
    run); else ``warn`` is told what is added. ``resume``: opened for a client (a server's), it
    is left open at exit; ``stored_key``: the key of the stored execution ``exec_tag`` (begun
    before this process, e.g. a server restarted), joined rather than started."""
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
            if strict():
                _roles(spec, transformation)
            run = Run(df_tag, exec_tag=exec_tag, store=store, spec=spec, user=declared.email,
                      email=declared.email, attach_to=stored_key,
                      capture_environment=stored_key is None)
        else:  # declared by another process: use the stored spec
            spec = m.DataflowSpec.from_dict(specbook_for(store, df_tag).snapshot())
            if not spec.transformations:
                message = (f"dataflow {df_tag!r} is not declared: make it with "
                           f"Dataflow({df_tag!r}, ...) and call save() before its Tasks")
                if strict() or warn is None:
                    raise SpecError(message)
                warn(message + "; it is made of what its tasks record")
            elif strict():
                _roles(spec, transformation)
            run = Run(df_tag, exec_tag=exec_tag, store=store, attach_to=stored_key,
                      capture_environment=stored_key is None)
        found = _executions[exec_tag] = _Execution(run, spec, keep_open=resume)
        return found


def release(store_url: str) -> None:
    """Forget, without ending them, the executions opened in store ``store_url`` for clients
    (``resume``): a server stopping leaves them open in the store, to be joined again."""
    with _lock:
        tags = [t for t, e in _executions.items() if e.keep_open and e.run.store.url == store_url]
        executions = [_executions.pop(t) for t in tags]
    for execution in executions:
        execution.run.flush()


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


_died: list[str] = []  # the uncaught exception that ended the script, if one did


def _note_death(hook):
    def excepthook(kind, value, tb):
        _died.append(f"the script died: {kind.__name__}: {value}")
        return hook(kind, value, tb)
    return excepthook


def _end_at_exit() -> None:
    with _lock:
        executions = list(_executions.values())
        _executions.clear()
    died = _died[-1] if _died else None
    for execution in executions:
        if execution.keep_open:
            continue
        try:
            left = [t._core for t in execution.tasks.values()
                    if t._core is not None and t._core.status == RUNNING]
            error = died or ("the process exited before Task.end() was called" if left else None)
            for task in left:
                task.end(error)
            execution.run.end(error)
        except Exception:  # noqa: BLE001 - exiting anyway; say what was lost
            log.exception("dlprov: could not end execution %r at exit", execution.run.exec_tag)


atexit.register(_end_at_exit)  # after the recorder's: runs before it, so the records still go
# A script killed by an exception must not leave its executions "finished".
sys.excepthook = _note_death(sys.excepthook)
