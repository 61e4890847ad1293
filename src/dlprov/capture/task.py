"""A task: one execution of a transformation inside a run, recording the elements it uses and produces."""
from __future__ import annotations

import os
import traceback
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from dlprov.capture.models import framework_of, layer_count, parameter_count
from dlprov.errors import SpecError, TaskEnded, ValueRejected
from dlprov.model import records as r
from dlprov.model.limits import check_field, storable_text
from dlprov.model.names import check_name
from dlprov.model.spec import AttributeType
from dlprov.model.values import Converter, convert_row

if TYPE_CHECKING:
    from dlprov.capture.run import Run

RUNNING, FINISHED, FAILED = "running", "finished", "failed"

# A set as a task uses it: its tag, its converters (the spec book's dict, grown in place) and
# its attributes' types (see Task._kinds).
_Found = tuple[str, dict[str, Converter], dict[str, AttributeType]]


class Task:
    """A running task. Use it as a context manager, or call :meth:`end` yourself.

    ``input(set, **values)`` and ``output(set, **values)`` record one element each: the values
    are checked on the caller's thread and handed to the background recorder.
    """

    def __init__(self, run: "Run", transformation: str, identifier: int, *,
                 depends_on: Iterable["Task"] = (), uses: Iterable[str] | None = None,
                 sub_id: str | None = None, workspace: str | None = None,
                 resource: str | None = None, key: str | None = None) -> None:
        self.run = run
        self.transformation = check_name("transformation", transformation)
        self.identifier = identifier
        where = f"task {self.transformation!r}:"
        sub_id = check_field(f"{where} sub_id", sub_id, 64)
        workspace = check_field(f"{where} workspace", workspace)
        resource = check_field(f"{where} resource", resource, 255)
        self.key = key or run.new_key()
        self.status = RUNNING
        self._joined = False
        self.produced: set[str] = set()
        self.depends_on = list(_as_tasks(depends_on))
        self._put = run.put
        # Per role, the set as given (any case) -> (set tag, the set's converters, its
        # attributes' types); per set, attribute names given in another case -> their
        # lower-case name.
        self._converters: dict[str, dict[str, _Found]] = {"input": {}, "output": {}}
        self._aliases: dict[str, dict[str, str]] = {}
        book = run.book
        uses_ = self._plan_uses(uses)  # first: a rejected task must leave the spec as it was
        changed = book.add_task(self.transformation, [
            (set_tag, producer.transformation) for producer, set_tags in uses_
            for set_tag in set_tags])
        if changed:
            run.send_spec()
        self.start_time = datetime.now()
        self._put((r.TASK_START, self.key, {
            "exec_key": run.key, "transformation": self.transformation,
            "identifier": identifier, "sub_id": sub_id, "status": RUNNING,
            "start_time": self.start_time, "workspace": workspace or run.workspace,
            "computing_resource": resource or run.hostname,
            "depends_on": [t.key for t in self.depends_on], "pid": os.getpid(),
            **({"rank": run.rank} if run.rank is not None else {})}))
        for producer, set_tags in uses_:
            self._put((r.USE, self.key, producer.key, sorted(set_tags)))

    def _plan_uses(self, uses: Iterable[str] | None) -> list[tuple["Task", set[str]]]:
        """Which sets of which dependency this task uses: all they produced, or those named."""
        wanted = None if uses is None else {check_name("set", u) for u in uses}
        plan = [(t, t.produced if wanted is None else t.produced & wanted) for t in self.depends_on]
        if wanted:
            missing = wanted - set().union(*(sets for _, sets in plan))
            if missing:
                raise SpecError(
                    f"task {self.transformation!r}: uses={sorted(missing)} names sets that none of "
                    f"the tasks it depends on ({[t.transformation for t in self.depends_on]}) "
                    f"produced")
        return [(t, sets) for t, sets in plan if sets]

    @classmethod
    def recorded(cls, run: "Run", key: str, transformation: str,
                 produced: Iterable[str] = ()) -> "Task":
        """A handle on a task recorded elsewhere (another process), to name in ``depends_on``;
        it records nothing itself. ``produced``: the sets it produced that dependants use."""
        handle = cls.__new__(cls)
        handle.run, handle.key, handle.status, handle._joined = run, key, FINISHED, False
        handle.transformation = check_name("transformation", transformation)
        handle.identifier, handle.depends_on = 0, []
        handle.produced = {check_name("set", s) for s in produced}
        return handle

    @classmethod
    def joined(cls, run: "Run", key: str, transformation: str, identifier: int) -> "Task":
        """A handle recording into task ``key``, which another process started and ends (what
        a pickled Task becomes in a child process): its elements go to that task, its
        :meth:`end` only stops this handle."""
        handle = cls.__new__(cls)
        handle.run, handle.key, handle.status = run, key, RUNNING
        handle.transformation = check_name("transformation", transformation)
        handle.identifier, handle.depends_on, handle.produced = identifier, [], set()
        handle._put, handle._joined = run.put, True
        handle._converters, handle._aliases = {"input": {}, "output": {}}, {}
        return handle

    def __reduce__(self):
        """Pickled (handed to a process started with ``spawn`` or ``forkserver``): the other
        process gets a handle that records into this same task through the execution attached
        there (see :meth:`joined`). What was captured so far is written first, so that the
        task is in the store when the child's elements arrive."""
        if self.status != RUNNING:
            raise self.ended_error()
        self.run.recorder.flush(wait=True)
        from dlprov.capture.run import _joined_task
        return _joined_task, (self.run._handle(), self.key, self.transformation, self.identifier)

    # -- elements ---------------------------------------------------------------------------
    def input(self, set_tag: str, /, **values: Any) -> None:
        """Record one element of input set ``set_tag`` (e.g. the hyperparameters in ``itrain``)."""
        self._element("input", set_tag, values)

    def output(self, set_tag: str, /, **values: Any) -> None:
        """Record one element of output set ``set_tag`` (e.g. one epoch's metrics in ``otrain``)."""
        self._element("output", set_tag, values)

    def _element(self, role: str, set_tag: str, values: dict[str, Any]) -> None:
        # The hot path: a status check, a dict lookup and, per value, a type check; a converter
        # call only for a value that is not a plain float, int or short text (convert_row).
        if self.status != RUNNING:
            raise self.ended_error()
        found = self._converters[role].get(set_tag)
        if found is None:
            found = self._first_element(role, set_tag, values)
        tag, converters, kinds = found
        try:
            row = convert_row(kinds, converters, values)
        except KeyError:  # a name in another case (Loss), or not an attribute of the set
            row = self._slow_row(tag, converters, values)
            if len(kinds) != len(converters):  # the set grew: let convert_row know the new ones
                kinds.update(self._kinds(tag))
        self._put((r.ELEMENT, self.key, tag, row))

    def _slow_row(self, set_tag: str, converters: dict[str, Converter],
                  values: dict[str, Any]) -> dict[str, Any]:
        aliases = self._aliases.setdefault(set_tag, {})
        row = {}
        for name, value in values.items():
            lowered = aliases.get(name)
            if lowered is None:
                lowered = name.lower()
                if lowered not in converters:
                    known = ", ".join(converters) or "none"
                    raise SpecError(
                        f"set {set_tag!r} has no attribute {name!r} (it has: {known}); "
                        f"attributes are fixed by the set's declaration or its first element "
                        f"in a run")
                aliases[name] = lowered
            if lowered in row:
                raise SpecError(f"set {set_tag!r}: attribute {lowered!r} is given twice "
                                f"(names are case-insensitive)")
            row[lowered] = converters[lowered](value)
        return row

    def _first_element(self, role: str, set_tag: str,
                       values: dict[str, Any]) -> tuple[str, dict[str, Converter]]:
        """The first element of ``set_tag`` (in any case) in ``role`` for this task: grow the
        spec, and cache the set's converters under the name as given."""
        tag = check_name("set", set_tag)
        found = self._converters[role].get(tag)
        if found is None:
            converters = self._first_of_set(role, tag, values)
            found = tag, converters, self._kinds(tag)
            self._converters[role][tag] = found
        self._converters[role][set_tag] = found
        return found

    def _kinds(self, set_tag: str) -> dict[str, AttributeType]:
        """The types of ``set_tag``'s attributes, for :func:`convert_row`. Types never change
        and attributes are never removed, so these stay true as the set grows; a new
        attribute takes the slow path (``_slow_row``) until :meth:`_element` adds it."""
        book = self.run.book
        with book.lock:  # another thread may be growing the spec
            return {name: a.type for name, a in book.spec.sets[set_tag].attributes.items()}

    def _first_of_set(self, role: str, set_tag: str,
                      values: dict[str, Any]) -> dict[str, Converter]:
        run, book = self.run, self.run.book
        changed = False
        if set_tag not in run.seen_sets:
            changed |= book.infer_set(set_tag, values)
        elif set_tag not in book.spec.sets:
            raise SpecError(f"set {set_tag!r} is not declared in dataflow {run.df_tag!r}")
        changed |= book.add_role(self.transformation, set_tag, role)
        if changed:
            run.send_spec()
        run.seen_sets.add(set_tag)
        if role == "output":
            self.produced.add(set_tag)
        return book.converters[set_tag]

    def ended_error(self) -> TaskEnded:
        """The error for a call that would record into this ended task, naming it and why."""
        run = self.run
        whose = (f"; run {run.exec_tag!r} has ended ({run.status}): start a new run"
                 if run.status != RUNNING else ": record into a new task (run.task(...))")
        return TaskEnded(f"task {self.identifier} {self.transformation!r} of run "
                         f"{run.exec_tag!r} has ended ({self.status}); nothing more can be "
                         f"recorded in it{whose}")

    # -- trained models ---------------------------------------------------------------------
    def model(self, path: str | os.PathLike, model: Any = None, *, name: str | None = None,
              framework: str | None = None, set_tag: str = "otrainedmodel") -> str:
        """Record a trained model saved at ``path``: an element of ``set_tag`` (``model_name``,
        ``model_dir``, ``model_id``) and a ``trained_model`` entity with the file's size and
        sha256 (computed by the recorder thread), the framework and, given the ``model`` object,
        its parameter and layer counts. Returns the model's stable id."""
        if self.status != RUNNING:
            raise self.ended_error()
        if path is None or not os.fspath(path):
            raise ValueRejected(f"task {self.transformation!r}: a trained model needs the path "
                                f"of its saved file, got {path!r}")
        path = os.path.abspath(os.fspath(path))
        where = f"task {self.transformation!r}: the model's"
        check_field(f"{where} path", path)
        name = check_field(f"{where} name", name or os.path.splitext(os.path.basename(path))[0],
                           255)
        framework = check_field(f"{where} framework", framework, 64)
        model_id = self.run.new_key()
        # (the attributes in this order: a new set's columns follow it)
        model_dir = self._path_value(set_tag, "model_dir", path)
        self.output(set_tag, model_name=name, model_dir=model_dir, model_id=model_id)
        self._put((r.MODEL, self.key, {
            "model_id": model_id, "name": name, "path": path,
            "framework": framework or framework_of(model),
            "parameter_count": parameter_count(model), "layer_count": layer_count(model),
            "created_at": datetime.now()}))
        return model_id

    def _path_value(self, set_tag: str, name: str, path: str) -> str | Path:
        """``path`` as attribute ``name`` of ``set_tag`` takes it: a Path, from which a new
        attribute is inferred a file; the text itself where the set already has the attribute
        as text (its first element gave a string), which refuses a Path."""
        book = self.run.book
        with book.lock:
            found = book.spec.sets.get(check_name("set", set_tag))
            attribute = found.attributes.get(name) if found is not None else None
        if attribute is not None and attribute.type is AttributeType.TEXT:
            return path
        return Path(path)

    # -- end --------------------------------------------------------------------------------
    def end(self, error: BaseException | str | None = None, output: str | None = None) -> None:
        """End the task: finished, or failed with ``error`` (an exception or its text)."""
        if self.status != RUNNING:
            return
        self.status = FAILED if error is not None else FINISHED
        if self._joined:  # the process that started the task ends it
            self.run.recorder.flush(wait=False)
            return
        if isinstance(error, BaseException):
            error = "".join(traceback.format_exception(error)).rstrip()
        self._put((r.TASK_END, self.key, {
            "status": self.status, "end_time": datetime.now(), "error_msg": storable_text(error),
            "output_msg": storable_text(output)}))
        self.run.recorder.flush(wait=False)

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(exc)

    def __repr__(self) -> str:
        return (f"<dlprov Task {self.identifier} {self.transformation!r} of "
                f"{self.run.exec_tag!r}: {self.status}>")


def _as_tasks(depends_on: Iterable["Task"] | "Task" | None) -> Iterable["Task"]:
    if depends_on is None:
        return ()
    if isinstance(depends_on, Task):
        return (depends_on,)
    tasks = list(depends_on)
    for t in tasks:
        if not isinstance(t, Task):
            raise TypeError(f"depends_on takes tasks made by run.task(), got {type(t).__name__}")
    return tasks

