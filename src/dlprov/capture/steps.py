"""One call of a preprocessing step as a task (:class:`Step`), and the per-run memory of which
task produced which data, that links each step to the ones before it.

Usage is set-level, as everywhere in dlprov: a task uses every element of a set its producer
made. A step returning several datasets (``x_train, x_test = ...``) therefore puts each position
in a set of its own (``o<step>_0``, ``o<step>_1``), so that the next step uses only what it was
given.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from dlprov.capture import run as run_module
from dlprov.capture.datasets import (
    DATASET_ATTRIBUTES,
    DEFAULT_LIMITS,
    Limits,
    describe,
    kind_of,
)
from dlprov.capture.parameters import record_parameters
from dlprov.capture.task import Task
from dlprov.errors import NoActiveRun
from dlprov.model.names import attribute_name
from dlprov.model.names import check_name

if TYPE_CHECKING:
    from dlprov.capture.run import Run

log = logging.getLogger("dlprov.capture")

_MAX_ITEMS = 256  # containers longer than this are not searched for datasets
_MAX_DEPTH = 3

current_run: ContextVar["Run | None"] = ContextVar("dlprov_current_run", default=None)
current_step: ContextVar["Step | None"] = ContextVar("dlprov_current_step", default=None)


def resolve_run(run: "Run | None", transformation: str) -> "Run":
    """``run``, else the current one (:func:`dlprov.use_run`), else :class:`NoActiveRun`."""
    if run is not None:
        return run
    found = current_run.get()
    if found is None:
        current = getattr(run_module, "current_run", None)  # if a run's `with` sets one
        found = current() if callable(current) else None
    if found is None:
        raise NoActiveRun(
            f"step {transformation!r} was called outside any run: give it one "
            f"(dlprov.step(..., run=run), dlprov.prepare(..., run=run)) or call it inside "
            f"`with dlprov.use_run(run):`")
    return found


# -- which task produced what, per run ---------------------------------------------------------

class _Produced:
    """The outputs of a run's steps: by content (fingerprint) and, for data that could not be
    hashed, by object identity."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.by_content: dict[tuple, tuple[Task, str]] = {}
        self.by_identity: dict[int, tuple[weakref.ref, tuple | None, Task, str]] = {}

    def producer(self, data: Any, fingerprint: tuple | None) -> tuple[Task, str] | None:
        with self.lock:
            if fingerprint is not None and fingerprint in self.by_content:
                return self.by_content[fingerprint]
            entry = self.by_identity.get(id(data))
        if entry is None or entry[0]() is not data:
            return None
        _, then, task, set_tag = entry
        if fingerprint is None or then is None:
            return task, set_tag
        log.warning("dlprov: a dataset that task %d (%s) produced in %s was changed in place "
                    "since; it is recorded as new input data (make the change a step to keep "
                    "its lineage)", task.identifier, task.transformation, set_tag)
        return None

    def add(self, data: Any, fingerprint: tuple | None, task: Task, set_tag: str) -> None:
        with self.lock:
            if fingerprint is not None:
                self.by_content[fingerprint] = (task, set_tag)  # the latest producer wins
            key = id(data)
            try:
                ref = weakref.ref(data, functools.partial(self._forget, key))
            except TypeError:  # not weakly referenceable: content only
                return
            self.by_identity[key] = (ref, fingerprint, task, set_tag)

    def _forget(self, key: int, ref: weakref.ref) -> None:
        # no lock: called by the garbage collector, maybe while this thread holds it
        entry = self.by_identity.get(key)
        if entry is not None and entry[0] is ref:
            self.by_identity.pop(key, None)


_PRODUCED = "_dlprov_produced"  # the attribute of a Run holding its _Produced
_produced_lock = threading.Lock()


def _produced(run: "Run") -> _Produced:
    found = getattr(run, _PRODUCED, None)
    if found is None:
        with _produced_lock:
            found = getattr(run, _PRODUCED, None)
            if found is None:
                found = _Produced()
                setattr(run, _PRODUCED, found)
    return found

# -- one step call ----------------------------------------------------------------------------

def datasets_in(value: Any, label: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(label, dataset) for ``value`` if it is a dataset, else for the datasets in it (tuples,
    lists and dicts, a few levels deep): ``x``, ``arrays[1]``, ``parts['train']``."""
    if kind_of(value) is not None:
        yield label, value
    elif depth < _MAX_DEPTH and isinstance(value, (tuple, list)) and len(value) <= _MAX_ITEMS:
        for i, item in enumerate(value):
            yield from datasets_in(item, f"{label}[{i}]", depth + 1)
    elif depth < _MAX_DEPTH and isinstance(value, dict) and len(value) <= _MAX_ITEMS:
        for key, item in value.items():
            yield from datasets_in(item, f"{label}[{key!r}]", depth + 1)


class Step:
    """One call of a preprocessing step, as a task (``.task``). Made by :func:`prepare`, and by
    :func:`step` for each call of the function it decorates.

    Entering it starts the task: it depends on the tasks that produced its input datasets and
    records its parameters and its raw inputs. :meth:`output` names what it produced, recorded
    when the block ends without an exception (else the task fails and the exception goes on).
    """

    def __init__(self, transformation: str, inputs: Iterable[tuple[str, Any]],
                 params: Mapping[str, Any] | None = None, *, run: "Run | None" = None,
                 params_set: str | None = None, inputs_set: str | None = None,
                 depends_on: Iterable[Task] | Task = (), uses: Iterable[str] | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.transformation = check_name("transformation", transformation)
        self.params_set, self.inputs_set, self.output_set = set_names(
            self.transformation, params_set, inputs_set)
        self.inputs = list(inputs)
        self.params = dict(params or {})
        self.limits = limits
        self.task: Task | None = None
        self._run = run
        self._depends_on = [depends_on] if isinstance(depends_on, Task) else list(depends_on)
        self._uses = None if uses is None else list(uses)
        self._outputs: list[tuple[str, str, Any]] = []
        self._files: dict[int, tuple[Any, str]] = {}
        self._token: Token | None = None

    # -- start ------------------------------------------------------------------------------
    def __enter__(self) -> "Step":
        run = resolve_run(self._run, self.transformation)
        produced = _produced(run)
        producers: dict[str, Task] = {}
        used: set[str] = set()
        raw: list[tuple[str, Any]] = []
        seen: set = set()
        for label, data in self.inputs:
            description = describe(data, self.limits)
            key = description.fingerprint or id(data)
            if key in seen:  # the same data given twice is one input
                continue
            seen.add(key)
            found = produced.producer(data, description.fingerprint)
            if found is None:
                raw.append((label, description))
            else:
                producers.setdefault(found[0].key, found[0])
                used.add(found[1])
        extra = [t for t in self._depends_on if t.key not in producers]
        if self._uses is None:  # a dependency given by hand: all it produced, as run.task does
            used |= set().union(*(t.produced for t in extra))
        else:
            used |= set(self._uses)
        depends_on = [*producers.values(), *extra]
        self.task = run.task(self.transformation, depends_on=depends_on,
                             uses=sorted(used) if depends_on else None)
        self._token = current_step.set(self)
        try:
            if self.params:
                record_parameters(run, self.task, self.params_set, self.params)
            if raw:
                run.declare_set(self.inputs_set, DATASET_ATTRIBUTES)
                for label, description in raw:
                    self.task.input(self.inputs_set, **description.values(label))
        except BaseException as exc:
            self._close(exc)
            raise
        return self

    # -- what it produced -------------------------------------------------------------------
    def output(self, data: Any, set_tag: str | None = None, *, name: str | None = None,
               path: str | os.PathLike | None = None) -> Any:
        """Name ``data`` (a dataset, or a tuple, list or dict of them) as produced by this step,
        in ``set_tag`` (default ``o<step>``), saved at ``path`` if given; returns ``data``."""
        self._check_open("output")
        set_tag = check_name("set", set_tag or self.output_set)
        found = list(datasets_in(data, name or f"output[{len(self._outputs)}]"))
        if not found:
            raise TypeError(f"step {self.transformation!r}: output() takes datasets (pandas, "
                            f"NumPy, SciPy sparse), got {type(data).__name__}")
        for label, dataset in found:
            self._outputs.append((set_tag, label, dataset))
        if path is not None:
            self.saved(path, *(d for _, d in found))
        return data

    def outputs(self, result: Any, outputs: Any = None) -> Any:
        """Name what a step returned as produced: a dataset goes to ``o<step>``; position ``i``
        of a tuple or list to ``o<step>_<i>``, key ``k`` of a dict to ``o<step>_<k>``.
        ``outputs`` overrides the sets: one tag for everything, a sequence of tags per position
        (None: not recorded), a mapping of dict keys (or positions) to tags."""
        for set_tag, label, value in _assign(self.output_set, result, outputs):
            if set_tag is not None and any(True for _ in datasets_in(value, label)):
                self.output(value, set_tag, name=label)
        return result

    def saved(self, path: str | os.PathLike, *data: Any) -> str | os.PathLike:
        """Record that ``data`` (outputs of this step) were saved at ``path`` (stored absolute);
        returns ``path``."""
        self._check_open("saved")
        for dataset in data:
            for _, found in datasets_in(dataset, ""):
                self._files[id(found)] = (found, os.path.abspath(os.fspath(path)))
        return path

    def _check_open(self, what: str) -> None:
        if self.task is None or self._token is None:
            raise RuntimeError(f"step {self.transformation!r}: {what}() is for inside its "
                               f"`with` block")

    # -- end --------------------------------------------------------------------------------
    def __exit__(self, exc_type, exc, tb) -> None:
        error = exc
        if exc is None:
            try:
                self._record_outputs()
            except BaseException as failure:  # noqa: BLE001 - ends the task, then raised
                error = failure
        self._close(error)
        if error is not exc:
            raise error

    def _record_outputs(self) -> None:
        run, task = self.task.run, self.task
        produced = _produced(run)
        declared: set[str] = set()
        for set_tag, label, data in self._outputs:
            description = describe(data, self.limits)
            if set_tag not in declared:
                run.declare_set(set_tag, DATASET_ATTRIBUTES)
                declared.add(set_tag)
            file = self._files.get(id(data))
            task.output(set_tag, **description.values(
                label, file[1] if file is not None and file[0] is data else None))
            produced.add(data, description.fingerprint, task, set_tag)

    def _close(self, error: BaseException | None) -> None:
        if self._token is not None:
            current_step.reset(self._token)
            self._token = None
        self._files.clear()
        self.task.end(error)

    def __repr__(self) -> str:
        return f"<dlprov Step {self.transformation!r}: {self.task!r}>"


def set_names(transformation: str, params_set: str | None = None,
              inputs_set: str | None = None) -> tuple[str, str, str]:
    """(parameters, raw inputs, outputs) sets of a step: ``i<step>``, ``i<step>dataset``,
    ``o<step>`` unless named."""
    return (check_name("set", params_set or f"i{transformation}"),
            check_name("set", inputs_set or f"i{transformation}dataset"),
            check_name("set", f"o{transformation}"))


def _assign(default: str, result: Any, outputs: Any) -> Iterator[tuple[str | None, str, Any]]:
    """(set tag, label, value) for each part of a step's result."""
    if isinstance(outputs, str):
        yield outputs, "return", result
    elif kind_of(result) is not None:
        if outputs is None:
            yield default, "return", result
        else:
            raise ValueError(f"outputs={outputs!r} names several sets, but the step returned "
                             f"one dataset: give one set tag")
    elif isinstance(result, (tuple, list)):
        if outputs is not None and not isinstance(outputs, Mapping):
            outputs = list(outputs)
            if len(outputs) != len(result):
                raise ValueError(f"outputs names {len(outputs)} sets, but the step returned "
                                 f"{len(result)} values")
        for i, value in enumerate(result):
            if outputs is None:
                tag = f"{default}_{i}"
            elif isinstance(outputs, Mapping):
                tag = outputs.get(i, f"{default}_{i}")
            else:
                tag = outputs[i]
            yield tag, f"return[{i}]", value
    elif isinstance(result, dict):
        named = outputs if isinstance(outputs, Mapping) else {}
        for key, value in result.items():
            tag = named.get(key) or f"{default}_{attribute_name(str(key))}"
            yield tag, f"return[{key!r}]", value
