"""Parsl: each invocation of an app runs as a dlprov task of one execution.

::

    with dlprov.run("sweep") as run:
        @provenance_app(run)
        def train(lr):
            current_task().output("otrain", lr=lr, loss=...)
            return model_path

        @provenance_app(run, uses=["otrain"])
        def evaluate(path):
            ...
        evaluate(train(0.1)).result()   # evaluate's task depends_on train's and uses its otrain

The app runs wherever Parsl puts it (a HighThroughputExecutor worker is another process): there
it attaches to the run's execution (:func:`dlprov.attach`) by key and records its task, whose
``depends_on`` are the tasks of the futures passed to it (as arguments or in Parsl's
``inputs=[...]``) and the tasks of this process given as ``depends_on=[...]`` to the call. It
flushes before returning, so that its records are stored before a dependant starts.

A dependant uses what its dependencies produced, as ``run.task(..., depends_on=...)`` does in
one process (USE records, ``task_usage`` rows, its ``<transformation>_task_id`` stamped on the
producers' elements): all of their output sets, or those named in ``uses``. A producer that ran
in another worker is known to the dependant only by its key, so its output sets are read from
the store: its transformation's output sets in the stored spec, narrowed (SQLite, PostgreSQL)
to those holding elements of that task.

Each task's ``sub_id`` names the Parsl worker that ran it (``worker 1 pid 4242``).
Parsl is imported when an app is made; without it :class:`~dlprov.DlprovError` says how to get it.
"""
from __future__ import annotations

import functools
import inspect
import os
from contextvars import ContextVar
from itertools import count
from typing import Any, Callable, Iterable

from dlprov.capture.run import Run, attach
from dlprov.capture.task import Task
from dlprov.errors import DlprovError
from dlprov.model.names import check_name, task_column

_current: ContextVar[Task | None] = ContextVar("dlprov_parsl_task", default=None)
_attached: dict[tuple[str, str], Run] = {}

# A dependency as the app's context carries it: (task key, transformation, its output sets,
# or None where they are to be read from the store).
_Dependency = tuple[str, str, "list[str] | None"]


def require_parsl() -> Any:
    """The ``parsl`` module, or a :class:`DlprovError` saying how to install it."""
    try:
        import parsl
    except ImportError as exc:
        raise DlprovError(
            f"Parsl is not installed ({exc}); install the extra: pip install 'dlprov[parsl]'"
        ) from exc
    return parsl


def current_task() -> Task:
    """The dlprov task of the Parsl app running on this thread."""
    found = _current.get()
    if found is None:
        raise RuntimeError("current_task() is for the body of an app made by provenance_app()")
    return found


def _worker_name() -> str:
    """Which worker runs this task: Parsl's worker rank (HighThroughputExecutor) and the pid."""
    rank = os.environ.get("PARSL_WORKER_RANK")
    return f"worker {rank} pid {os.getpid()}" if rank is not None else f"pid {os.getpid()}"


def _producers(run: Run, depends_on: list[_Dependency]) -> list[Task]:
    """Handles on the tasks this one depends on, with the sets each produced. Reads the stored
    spec first: producers that ran in other processes grew it with sets this process has not
    seen, and a task can only use sets its spec book knows."""
    if not depends_on:
        return []
    stored = run.store.load_spec(run.df_tag)
    if stored is not None and run.book.merge(stored):
        run.send_spec()
    unknown = [(key, transformation) for key, transformation, sets in depends_on if sets is None]
    found = _stored_outputs(run, unknown) if unknown else {}
    return [Task.recorded(run, key, transformation,
                          sets if sets is not None else found.get(key, ()))
            for key, transformation, sets in depends_on]


def _stored_outputs(run: Run, tasks: list[tuple[str, str]]) -> dict[str, set[str]]:
    """The output sets of ``tasks`` (key, transformation) as the store has them: the sets the
    spec gives their transformations as outputs, keeping (on a database) those holding at
    least one element of the task."""
    spec = run.book.spec
    candidates = {key: set(spec.sets_of(transformation, "output"))
                  for key, transformation in tasks}
    if run.store.backend == "http":  # a server has no per-task element lookup: the spec says
        return candidates
    from sqlalchemy import select

    from dlprov.store import schema

    keys = [key for key, _ in tasks]
    with run.store.read() as conn:
        ids = dict(conn.execute(select(schema.task.c.uuid, schema.task.c.id)
                                .where(schema.task.c.uuid.in_(keys))).all())
        found: dict[str, set[str]] = {}
        for key, transformation in tasks:
            found[key] = set()
            if key not in ids:
                continue
            for set_tag in sorted(candidates[key]):
                table = schema.set_table(conn.dialect.name, spec, set_tag)
                column = table.c[task_column(transformation)]
                if conn.execute(select(column).where(column == ids[key]).limit(1)).first():
                    found[key].add(set_tag)
    return found


def _run_as_task(fn: Callable, context: dict, *args: Any, **kwargs: Any) -> Any:
    """The body Parsl runs (in a worker): ``fn`` inside a task of the run's execution."""
    key = (context["store"], context["exec_key"])
    run = _attached.get(key)
    if run is None:  # one attached run per worker process and execution
        run = _attached[key] = attach(context["exec_key"], context["df_tag"],
                                      store=context["store"])
    producers = _producers(run, context["depends_on"])
    task = run.task(context["transformation"], depends_on=producers, uses=context["uses"],
                    identifier=context["identifier"], key=context["task_key"],
                    sub_id=_worker_name())
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


def _future_tasks(args: tuple, kwargs: dict) -> list[_Dependency]:
    """The tasks of this integration's futures among an app call's arguments: positional,
    keyword and in Parsl's ``inputs=[...]``, which Parsl also waits for."""
    values = [*args, *kwargs.values(), *(kwargs.get("inputs") or ())]
    return [(*a._dlprov_task, None) for a in values if hasattr(a, "_dlprov_task")]


def _local_tasks(run: Run, depends_on: Iterable[Task] | Task) -> list[_Dependency]:
    """Tasks of this process named in ``depends_on=``: finished before the app is submitted,
    so their output sets are known here."""
    tasks = [depends_on] if isinstance(depends_on, Task) else list(depends_on)
    for t in tasks:
        if not isinstance(t, Task):
            raise TypeError(f"depends_on takes tasks of the run (run.task(), a step's .task), "
                            f"got {type(t).__name__}; pass an app's future as an argument")
        if t.run.key != run.key:
            raise ValueError(f"depends_on: task {t.transformation!r} belongs to another "
                             f"execution ({t.run.exec_tag!r}), not {run.exec_tag!r}")
    return [(t.key, t.transformation, sorted(t.produced)) for t in tasks]


def provenance_app(run: Run, transformation: str | None = None, *,
                   uses: Iterable[str] | None = None,
                   **app_options: Any) -> Callable[[Callable], Callable]:
    """Like ``parsl.python_app`` (``app_options`` go to it), recording each invocation as a
    task of ``transformation`` (default: the function's name) in ``run``'s execution.

    A future of such an app passed as an argument (or in ``inputs=[...]``) makes the new task
    depend on the future's task; so do the tasks of this process given to the call as
    ``depends_on=[task, ...]`` (a keyword the app keeps for itself). The new task uses every set
    its dependencies produced, or only the sets named in ``uses`` (a named set that none of
    them produced fails the task with :class:`~dlprov.SpecError`)."""
    require_parsl()
    from parsl import python_app

    if transformation is not None:
        check_name("transformation", transformation)
    wanted = None if uses is None else sorted({check_name("set", u) for u in uses})
    identifiers = count(1)

    def decorate(fn: Callable) -> Callable:
        name = check_name("transformation", transformation or fn.__name__)
        if "depends_on" in _parameters(fn):
            raise TypeError(f"{fn.__name__}() has a parameter named depends_on, which "
                            f"provenance_app keeps for the tasks an app call depends on: "
                            f"rename it")
        app = python_app(_run_as_task, **app_options)

        @functools.wraps(fn)
        def invoke(*args: Any, depends_on: Iterable[Task] | Task = (), **kwargs: Any):
            dependencies = [*_local_tasks(run, depends_on), *_future_tasks(args, kwargs)]
            run.flush(timeout=None)  # the execution must be stored before a worker attaches
            task_key = run.new_key()
            future = app(fn, {
                "store": run.store.url, "exec_key": run.key, "df_tag": run.df_tag,
                "transformation": name, "identifier": next(identifiers), "task_key": task_key,
                "depends_on": dependencies, "uses": wanted}, *args, **kwargs)
            future._dlprov_task = (task_key, name)
            return future

        return invoke

    return decorate


def _parameters(fn: Callable) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # some builtins have none
        return set()
