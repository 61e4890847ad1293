"""Preprocessing steps as tasks, linked by the data they pass on.

:func:`step` (a decorator) and :func:`prepare` (a context manager) make each call of a step on
pandas DataFrames, NumPy arrays or scikit-learn transformers a task of the run: its plain
parameters are an element of ``i<step>``, each dataset it returns an element of ``o<step>``
(kind, shape, columns, dtypes, content digest, record ids, file). The run remembers which task
produced which content, so a dataset passed from one step to the next makes the second depend
on the first and use the set it produced (``depends_on``/``uses``): the chain that Q12 follows
needs no hand-written dependency. A dataset no step of the run produced is recorded as an
element of ``i<step>dataset``, the raw data, by each step that uses it.

The steps themselves are :mod:`dlprov.capture.steps`; scikit-learn's transformers
:mod:`dlprov.capture.estimators`; what is recorded of a dataset :mod:`dlprov.capture.datasets`.
"""
from __future__ import annotations

import functools
import inspect
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from dlprov.capture.datasets import Description, Limits
from dlprov.capture.parameters import NOT_PLAIN, plain
from dlprov.capture.steps import (
    Step,
    _produced,
    current_run,
    current_step,
    datasets_in,
    set_names,
)
from dlprov.errors import NoActiveRun
from dlprov.model.names import check_name

if TYPE_CHECKING:
    from dlprov.capture.run import Run
    from dlprov.capture.task import Task


@contextmanager
def use_run(run: "Run") -> Iterator["Run"]:
    """Make ``run`` the one that steps called without ``run=`` capture into::

        with dlprov.run("digits") as run, dlprov.use_run(run):
            clean = dropna(raw)
    """
    token = current_run.set(run)
    try:
        yield run
    finally:
        current_run.reset(token)


def prepare(transformation: str, /, *data: Any, params: Mapping[str, Any] | None = None,
            run: "Run | None" = None, depends_on: Iterable[Task] | Task = (),
            uses: Iterable[str] | None = None, params_set: str | None = None,
            inputs_set: str | None = None, record_ids: str | int | None = None,
            max_ids: int = Limits.max_ids, max_columns: int = Limits.max_columns,
            max_digest_bytes: int | None = None) -> Step:
    """A step written as a block: a task of ``transformation`` that used ``data`` (datasets, or
    tuples/lists/dicts of them) with ``params``::

        with dlprov.prepare("dropna", raw, params={"how": "any"}, run=run) as step:
            clean = step.output(raw.dropna(how="any"))

    It depends on the steps that produced ``data`` (and on ``depends_on``, using ``uses`` of
    theirs). ``step.task`` is the :class:`~dlprov.Task`, for anything else to record.
    ``record_ids`` (``"index"`` or a column) and the ``max_*`` bounds: see :class:`Limits`.
    """
    inputs = []
    for i, value in enumerate(data):
        found = list(datasets_in(value, f"data[{i}]"))
        if not found:
            raise TypeError(f"prepare({transformation!r}, ...) takes datasets after the name; "
                            f"got {type(value).__name__} at position {i}: give plain values "
                            f"as params={{...}}")
        inputs += found
    return Step(transformation, inputs, params, run=run, params_set=params_set,
                inputs_set=inputs_set, depends_on=depends_on, uses=uses,
                limits=Limits(record_ids, max_ids, max_columns, max_digest_bytes))


def step(target: Any = None, /, *, run: "Run | None" = None, outputs: Any = None,
         params_set: str | None = None, inputs_set: str | None = None,
         ignore: Iterable[str] = (), record_ids: str | int | None = None,
         max_ids: int = Limits.max_ids, max_columns: int = Limits.max_columns,
         max_digest_bytes: int | None = None) -> Any:
    """Record each call of a preprocessing step as a task::

        @dlprov.step("normalizedata", run=run)   # or @dlprov.step(run=run): the function's name
        def normalize(df, method="minmax"): ...

        scaled = dlprov.step(pipeline, run=run).fit_transform(x)   # scikit-learn

    A call's plain arguments (numbers, text, paths, small lists and dicts; not those in
    ``ignore``) are its parameters (``i<step>``); its dataset arguments its inputs, linked to
    the steps that produced them; what it returns its outputs (``o<step>``; ``outputs``: see
    :meth:`Step.outputs`). Inside the function, :func:`saved` records where an output was
    written. Without ``run``, the run made current by :func:`use_run`.

    Given a scikit-learn transformer or Pipeline (or its bound ``fit_transform``/``transform``),
    returns an object whose ``fit_transform``/``transform`` record the estimator's class and
    ``get_params()``; each step of a Pipeline is a task of its own, named after it (prefixed by
    ``target``'s name if one is given).
    """
    from dlprov.capture.estimators import Transformer, is_estimator

    limits = Limits(record_ids, max_ids, max_columns, max_digest_bytes)
    options = dict(run=run, params_set=params_set, inputs_set=inputs_set, limits=limits)

    def decorate(function: Callable, name: str | None = None) -> Any:
        if is_estimator(function):
            return Transformer(function, name, outputs=outputs, **options)
        owner = getattr(function, "__self__", None)
        if inspect.ismethod(function) and is_estimator(owner) \
                and function.__name__ in ("fit_transform", "transform"):
            return getattr(Transformer(owner, name, outputs=outputs, **options),
                           function.__name__)
        if not callable(function):
            raise TypeError(f"dlprov.step decorates functions and wraps scikit-learn "
                            f"transformers, got {type(function).__name__}")
        return _wrap(function, name or function.__name__, outputs, frozenset(ignore), options)

    if target is None or isinstance(target, str):
        return functools.partial(decorate, name=target)
    return decorate(target)  # @dlprov.step without arguments, or step(transformer)


def saved(path: str | os.PathLike, *data: Any) -> str | os.PathLike:
    """Record, inside a step, that its outputs ``data`` were saved at ``path`` (the
    ``dataset_dir`` of their elements); returns ``path``::

        np.save(dlprov.saved("normalized.npy", x), x)
    """
    current = current_step.get()
    if current is None:
        raise NoActiveRun(f"dlprov.saved({os.fspath(path)!r}, ...) was called outside any "
                          f"step: call it inside the function decorated with dlprov.step or "
                          f"the `with dlprov.prepare(...)` block that produces the data")
    return current.saved(path, *data)


def _wrap(function: Callable, name: str, outputs: Any, ignore: frozenset[str],
          options: dict) -> Callable:
    name = check_name("transformation", name)
    set_names(name, options["params_set"], options["inputs_set"])  # refuse bad names now
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have none
        signature = None

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        inputs, params = split_arguments(signature, args, kwargs, ignore)
        with Step(name, inputs, params, **options) as current:
            result = function(*args, **kwargs)
            current.outputs(result, outputs)
        return result

    wrapper.transformation = name  # type: ignore[attr-defined]
    return wrapper


def split_arguments(signature: inspect.Signature | None, args: Sequence[Any],
                    kwargs: Mapping[str, Any], ignore: frozenset[str] = frozenset()
                    ) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """A call's arguments as (datasets with their labels, plain parameters by name); other
    values (models, generators, ...) are neither."""
    if signature is not None:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        items: list[tuple[str, Any]] = []
        for name, value in bound.arguments.items():
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                items += value.items()
            else:
                items.append((name, value))
    else:
        items = [(f"arg{i}", v) for i, v in enumerate(args)] + list(kwargs.items())
    inputs, params = [], {}
    for name, value in items:
        if name in ignore:
            continue
        found = list(datasets_in(value, name))
        if found:
            inputs += found
            continue
        value = plain(value)
        if value is not NOT_PLAIN:
            params[name] = value
    return inputs, params


def producer_of(run: "Run", data: Any,
                description: Description | None) -> "tuple[Task, str] | None":
    """The task of ``run`` that produced ``data`` as a step's output, and the set it is in, or
    None: by content where ``description`` (of the whole data, see
    :func:`dlprov.capture.datasets.describe`) has a digest, else by object identity. Lets a
    training (:mod:`dlprov.integrations.data`) use a step's output as a next step would."""
    fingerprint = description.fingerprint if description is not None else None
    return _produced(run).producer(data, fingerprint)
