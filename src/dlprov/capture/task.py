"""A task: one execution of a transformation inside a run, recording the elements it uses and produces."""
from __future__ import annotations

import os
import traceback
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from dlprov.capture.models import framework_of, layer_count, parameter_count
from dlprov.errors import SpecError, ValueRejected
from dlprov.model import records as r
from dlprov.model.names import check_name
from dlprov.model.values import Converter

if TYPE_CHECKING:
    from dlprov.capture.run import Run

RUNNING, FINISHED, FAILED = "running", "finished", "failed"


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
        self.key = key or run.new_key()
        self.status = RUNNING
        self.produced: set[str] = set()
        self.depends_on = list(_as_tasks(depends_on))
        self._put = run.put
        self._converters: dict[str, dict[str, dict[str, Converter]]] = {"input": {}, "output": {}}
        book = run.book
        uses_ = self._plan_uses(uses)  # first: a rejected task must leave the spec as it was
        changed = book.add_transformation(self.transformation)
        for producer, set_tags in uses_:
            for set_tag in set_tags:
                changed |= book.add_role(self.transformation, set_tag, "input",
                                         producer.transformation)
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
        handle.run, handle.key, handle.status = run, key, FINISHED
        handle.transformation = check_name("transformation", transformation)
        handle.identifier, handle.depends_on = 0, []
        handle.produced = set(produced)
        return handle

    # -- elements ---------------------------------------------------------------------------
    def input(self, set_tag: str, /, **values: Any) -> None:
        """Record one element of input set ``set_tag`` (e.g. the hyperparameters in ``itrain``)."""
        self._element("input", set_tag, values)

    def output(self, set_tag: str, /, **values: Any) -> None:
        """Record one element of output set ``set_tag`` (e.g. one epoch's metrics in ``otrain``)."""
        self._element("output", set_tag, values)

    def _element(self, role: str, set_tag: str, values: dict[str, Any]) -> None:
        converters = self._converters[role].get(set_tag)
        if converters is None:
            converters = self._first_element(role, set_tag, values)
        row = {}
        try:
            for name, value in values.items():
                row[name] = converters[name](value)
        except KeyError:
            row = self._slow_row(set_tag, converters, values)
        self._put((r.ELEMENT, self.key, set_tag, row))

    def _slow_row(self, set_tag: str, converters: dict[str, Converter],
                  values: dict[str, Any]) -> dict[str, Any]:
        row = {}
        for name, value in values.items():
            found = converters.get(name.lower()) if isinstance(name, str) else None
            if found is None:
                known = ", ".join(converters) or "none"
                raise SpecError(
                    f"set {set_tag!r} has no attribute {name!r} (it has: {known}); attributes "
                    f"are fixed by the set's declaration or its first element in a run")
            row[name.lower()] = found(value)
        return row

    def _first_element(self, role: str, set_tag: str,
                       values: dict[str, Any]) -> dict[str, Converter]:
        set_tag = check_name("set", set_tag)
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
        converters = self._converters[role][set_tag] = book.converters[set_tag]
        return converters

    # -- trained models ---------------------------------------------------------------------
    def model(self, path: str | os.PathLike, model: Any = None, *, name: str | None = None,
              framework: str | None = None, set_tag: str = "otrainedmodel") -> str:
        """Record a trained model saved at ``path``: an element of ``set_tag`` (``model_name``,
        ``model_dir``, ``model_id``) and a ``trained_model`` entity with the file's size and
        sha256 (computed by the recorder thread), the framework and, given the ``model`` object,
        its parameter and layer counts. Returns the model's stable id."""
        if path is None or not os.fspath(path):
            raise ValueRejected(f"task {self.transformation!r}: a trained model needs the path "
                                f"of its saved file, got {path!r}")
        path = os.path.abspath(os.fspath(path))
        name = name or os.path.splitext(os.path.basename(path))[0]
        model_id = self.run.new_key()
        self.output(set_tag, model_name=name, model_dir=Path(path), model_id=model_id)
        self._put((r.MODEL, self.key, {
            "model_id": model_id, "name": name, "path": path,
            "framework": framework or framework_of(model),
            "parameter_count": parameter_count(model), "layer_count": layer_count(model),
            "created_at": datetime.now()}))
        return model_id

    # -- end --------------------------------------------------------------------------------
    def end(self, error: BaseException | str | None = None, output: str | None = None) -> None:
        """End the task: finished, or failed with ``error`` (an exception or its text)."""
        if self.status != RUNNING:
            return
        self.status = FAILED if error is not None else FINISHED
        if isinstance(error, BaseException):
            error = "".join(traceback.format_exception(error)).rstrip()
        self._put((r.TASK_END, self.key, {
            "status": self.status, "end_time": datetime.now(), "error_msg": error,
            "output_msg": output}))
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

