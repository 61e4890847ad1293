"""Parsl: each invocation of an app runs as a dlprov task of one execution.

::

    with dlprov.run("sweep") as run:
        @provenance_app(run)
        def train(lr):
            current_task().output("otrain", lr=lr, loss=...)
            return model_path

        @provenance_app(run)
        def evaluate(path):
            ...
        evaluate(train(0.1)).result()   # evaluate's task depends_on train's

The app runs wherever Parsl puts it (a HighThroughputExecutor worker is another process): there
it attaches to the run's execution (:func:`dlprov.attach`) by key and records its task, whose
``depends_on`` are the tasks of the futures passed to it, and flushes before returning, so that
its records are stored before a dependant starts. Only dependencies are recorded across
processes, not which sets a dependant used (the producer's sets are not known to the consumer).
Parsl is imported when an app is made.
"""
from __future__ import annotations

import functools
from contextvars import ContextVar
from itertools import count
from typing import Any, Callable

from dlprov.capture.run import Run, attach
from dlprov.capture.task import Task

_current: ContextVar[Task | None] = ContextVar("dlprov_parsl_task", default=None)
_attached: dict[tuple[str, str], Run] = {}


def current_task() -> Task:
    """The dlprov task of the Parsl app running on this thread."""
    found = _current.get()
    if found is None:
        raise RuntimeError("current_task() is for the body of an app made by provenance_app()")
    return found


def _run_as_task(fn: Callable, context: dict, *args: Any, **kwargs: Any) -> Any:
    """The body Parsl runs (in a worker): ``fn`` inside a task of the run's execution."""
    key = (context["store"], context["exec_key"])
    run = _attached.get(key)
    if run is None:  # one attached run per worker process and execution
        run = _attached[key] = attach(context["exec_key"], context["df_tag"],
                                      store=context["store"])
    producers = [Task.recorded(run, k, t) for k, t in context["depends_on"]]
    task = run.task(context["transformation"], depends_on=producers,
                    identifier=context["identifier"], key=context["task_key"])
    token = _current.set(task)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        task.end(exc)
        raise
    else:
        task.end()
    finally:
        _current.reset(token)
        run.flush(timeout=None)  # stored before any dependant can start
    return result


def provenance_app(run: Run, transformation: str | None = None,
                   **app_options: Any) -> Callable[[Callable], Callable]:
    """Like ``parsl.python_app`` (``app_options`` go to it), recording each invocation as a
    task of ``transformation`` (default: the function's name) in ``run``'s execution. A future
    of such an app passed as an argument makes the new task depend on the future's task."""
    from parsl import python_app

    identifiers = count(1)

    def decorate(fn: Callable) -> Callable:
        name = transformation or fn.__name__
        app = python_app(_run_as_task, **app_options)

        @functools.wraps(fn)
        def invoke(*args: Any, **kwargs: Any):
            producers = [a._dlprov_task for a in (*args, *kwargs.values())
                         if hasattr(a, "_dlprov_task")]
            run.flush(timeout=None)  # the execution must be stored before a worker attaches
            task_key = run.new_key()
            future = app(fn, {
                "store": run.store.url, "exec_key": run.key, "df_tag": run.df_tag,
                "transformation": name, "identifier": next(identifiers), "task_key": task_key,
                "depends_on": producers}, *args, **kwargs)
            future._dlprov_task = (task_key, name)
            return future

        return invoke

    return decorate
