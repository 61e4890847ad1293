"""A run: one execution (``df_exec``) of a dataflow, the context in which tasks capture."""
from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import uuid
from contextvars import ContextVar
from datetime import datetime
from itertools import count
from typing import Iterable, Mapping

from dlprov.capture.distributed import World, agree, detect
from dlprov.capture.environment import collect_agent, collect_environment, git_email
from dlprov.capture.specbook import specbook_for
from dlprov.capture.task import FAILED, FINISHED, RUNNING, Task
from dlprov.errors import RunEnded
from dlprov.model.limits import check_field, storable_text
from dlprov.model import records as r
from dlprov.model.names import check_name
from dlprov.model.spec import Attribute, AttributeType, DataflowSpec
from dlprov.model.tags import check_notes, check_tags
from dlprov.recorder.recorder import recorder_for
from dlprov.store.store import Store

CAPTURE_ENVIRONMENT_ENV = "DLPROV_CAPTURE_ENVIRONMENT"

# The run of the innermost `with dlprov.run(...)` block (per thread and task).
_active: ContextVar["Run | None"] = ContextVar("dlprov_active_run", default=None)


def current_run() -> "Run | None":
    """The run whose ``with`` block is running here, if any (data-preparation steps use it)."""
    return _active.get()


class Run:
    """One execution of dataflow ``df_tag``. Prefer :func:`dlprov.run` to make one.

    The run is recorded as started when made and as ended by :meth:`end` (or leaving the
    ``with`` block: failed if an exception escaped it).
    """

    def __init__(self, df_tag: str, *, exec_tag: str | None = None,
                 store: str | os.PathLike | Store | None = None, spec: DataflowSpec | None = None,
                 user: str | None = None, email: str | None = None,
                 organization: str | None = None, workspace: str | None = None,
                 capture_environment: bool | Mapping[str, bool] = True,
                 attach_to: str | None = None, distributed: bool | None = None,
                 tags: Mapping[str, object] | None = None, notes: str | None = None) -> None:
        self.df_tag = check_name("dataflow", df_tag)
        #: The execution's tags (``{"team": "vision"}``) and notes, as given at the start.
        self.tags, self.notes = check_tags(tags), check_notes(notes)
        self.store = store if isinstance(store, Store) else Store(store)
        # Attached (see :func:`attach`): this process adds tasks to an execution another started.
        self.attached = attach_to is not None
        #: The torchrun world this run is a rank of (None outside one): see :mod:`.distributed`.
        self.world = None if self.attached else _world(distributed)
        self.start_time = datetime.now()
        if self.world is None:
            self.key = attach_to or self.new_key()
            self.exec_tag = self._exec_tag(exec_tag, self.key, check=not self.attached)
        else:  # every rank records into one execution: same key, rank 0's tag
            self.key, self.exec_tag = agree(
                self.world, self.df_tag, lambda key, derived: self._exec_tag(
                    exec_tag, key, check=self.world.leader, timed=not derived))
        self.hostname = socket.gethostname()
        self.agent = collect_agent(user, email, organization, ask_git=False)
        for field in ("username", "email", "organization"):
            check_field(f"run {self.df_tag!r}: {field}", self.agent.get(field), 255)
        self.username = self.agent["username"]
        self.workspace = (check_field("workspace", workspace) if workspace
                          else storable_text(os.getcwd()))  # a folder's name is no reason to fail
        self.status = RUNNING
        self.book = specbook_for(self.store, self.df_tag)
        if spec is not None:
            if spec.tag != self.df_tag:
                raise ValueError(f"spec is for dataflow {spec.tag!r}, not {self.df_tag!r}")
            self.book.merge(spec)
        # The tag as first written (KerasProv-example) is what the store shows; it matches the
        # lower-cased one everywhere. A stored spec keeps the label it was first given.
        label = spec.label if spec is not None and spec.label else (
            df_tag if df_tag != self.df_tag else None)
        with self.book.lock:
            if self.book.spec.label is None and label is not None:
                self.book.spec.label = label
        self.seen_sets: set[str] = set()
        self.recorder = recorder_for(self.store)
        self.put = self.recorder.put
        self._identifiers = count(1)
        self._open_tasks: list[Task] = []
        self.send_spec()
        if self.attached:
            self._environment = None
            return
        # Every rank may be the first to reach the store; only rank 0's fields overwrite.
        follower = {"leader": False} if self.world is not None and not self.leads else {}
        self.put((r.EXEC_START, self.key, {
            "tag": self.exec_tag, "df_tag": self.df_tag, "start_time": self.start_time,
            "hostname": self.hostname, "pid": os.getpid(), "workspace": self.workspace,
            **self.agent, **follower,
            **({"tags": self.tags} if self.tags else {}),
            **({"notes": self.notes} if self.notes is not None else {})}))
        self._environment = (_probe_environment(self, capture_environment) if self.leads
                             else None)

    @property
    def rank(self) -> int | None:
        """This process's rank in a torchrun world, None outside one."""
        return None if self.world is None else self.world.rank

    @property
    def leads(self) -> bool:
        """Whether this process ends the execution: not attached, and rank 0 if distributed."""
        return not self.attached and (self.world is None or self.world.leader)

    def _exec_tag(self, exec_tag: str | None, key: str, *, check: bool,
                  timed: bool = True) -> str:
        """The exec tag: ``exec_tag``, else one made of the dataflow, the start time (when
        ``timed``: ranks deriving their key alone share no clock) and the key. ``check``: refuse
        a tag that another execution holds."""
        # 12 hex digits of the random key: with 6, two of the ~60 runs a second a sweep starts
        # shared a tag about once in 60 sweeps of 10,000 runs, and the store refused the second
        tag = exec_tag or (f"{self.df_tag}-{self.start_time:%Y-%m-%dT%H:%M:%S}-{key[:12]}"
                           if timed else f"{self.df_tag}-{key[:12]}")
        if not isinstance(tag, str) or not tag.strip() or len(tag) > 200:
            raise ValueError(f"exec_tag must be a non-empty string of at most 200 characters, "
                             f"got {tag!r}")
        check_field("exec_tag", tag)
        if check and exec_tag is not None and self.store.has_execution(
                exec_tag, other_than=key if self.world is not None else None):
            raise ValueError(f"execution {exec_tag!r} already exists in {self.store.safe_url}; "
                             f"exec tags name one execution each: choose another")
        return tag

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    def send_spec(self) -> None:
        """Send the current spec to the store (the writer merges it and versions the change)."""
        self.put((r.SPEC, self.df_tag, self.book.snapshot()))

    def declare_set(self, set_tag: str,
                    attributes: Mapping[str, AttributeType | str] | Iterable[Attribute]) -> None:
        """Declare a set and its attributes up front, e.g.
        ``run.declare_set("otrain", {"loss": "numeric", "epoch": "numeric"})``.
        Declaring more attributes later grows the spec (a new version of the dataflow)."""
        if isinstance(attributes, Mapping):
            attributes = [Attribute(name, kind) for name, kind in attributes.items()]
        if self.book.declare_set(set_tag, list(attributes)):
            self.send_spec()

    def task(self, transformation: str, *, depends_on: Iterable[Task] | Task | None = (),
             uses: Iterable[str] | None = None, sub_id: str | None = None,
             workspace: str | None = None, identifier: int | None = None,
             resource: str | None = None, key: str | None = None) -> Task:
        """Start a task of ``transformation``. It uses what the tasks in ``depends_on`` produced
        (only the sets named in ``uses``, if given). Use it as a context manager."""
        if self.status != RUNNING:
            raise RunEnded(f"run {self.exec_tag!r} has ended ({self.status}); start a new run")
        if identifier is None:
            identifier = next(self._identifiers)
            if self.world is not None:  # interleaved: rank r's n-th task is (n-1)*size + r + 1
                identifier = (identifier - 1) * self.world.world_size + self.world.rank + 1
        task = Task(self, transformation, identifier,
                    depends_on=depends_on, uses=uses, sub_id=sub_id, workspace=workspace,
                    resource=resource, key=key)
        self._open_tasks = [t for t in self._open_tasks if t.status == RUNNING] + [task]
        return task

    def end(self, error: BaseException | str | None = None, *, wait: bool = True) -> None:
        """End the run and, with ``wait``, block until its records are written (or spooled)."""
        if self.status != RUNNING:
            return
        self.status = FAILED if error is not None else FINISHED
        if self._environment is not None:
            self._environment.join(timeout=10)
        for task in self._open_tasks:  # tasks left open end with the run
            task.end(error if error is not None else None)
        if not self.leads:  # the execution is its starter's (rank 0's) to end
            self.recorder.flush(wait=wait)
            return
        self.put((r.EXEC_END, self.key, {
            "status": self.status, "end_time": datetime.now(),
            "error_msg": None if error is None else str(error)}))
        self.recorder.flush(wait=wait)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until everything captured so far is written (or spooled)."""
        return self.recorder.flush(wait=True, timeout=timeout)

    def __enter__(self) -> "Run":
        self._active_token = _active.set(self)
        return self

    def __reduce__(self):
        """Pickled (handed to a process started with ``spawn`` or ``forkserver``): what the other
        process gets is this execution attached there (:func:`attach`), whose tasks are
        recorded in it. Everything captured so far is written first, so that they find it."""
        if self.status != RUNNING:
            raise RunEnded(f"run {self.exec_tag!r} has ended ({self.status}); a process it is "
                           f"handed to could record nothing into it")
        self.recorder.flush(wait=True)
        return _joined_run, self._handle()

    def _handle(self) -> tuple[str, str, str, str]:
        """What another process needs to join this execution: (store URL, key, dataflow, exec
        tag), as :func:`_joined_run` takes them."""
        return self.store.url, self.key, self.df_tag, self.exec_tag

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.end(exc)
        finally:
            token = getattr(self, "_active_token", None)
            if token is not None:
                _active.reset(token)

    def __repr__(self) -> str:
        return f"<dlprov Run {self.exec_tag!r} of {self.df_tag!r}: {self.status}>"


def _world(distributed: bool | None) -> World | None:
    """The world of a new run: detected unless ``distributed`` is False; True requires one."""
    if distributed is False:
        return None
    found = detect()
    if found is None and distributed:
        raise ValueError("distributed=True but this process is no rank of a torch.distributed "
                         "world: launch it with torchrun (RANK and WORLD_SIZE unset)")
    return found


def _probe_environment(run: Run, capture: bool | Mapping[str, bool]) -> threading.Thread | None:
    """Collect the environment on a thread of its own, so that starting a run costs nothing;
    ``capture`` is False, or a mapping turning single probes off (``{"git": False}``)."""
    if capture is False or os.environ.get(CAPTURE_ENVIRONMENT_ENV, "1") in ("0", "false", "no"):
        return None
    probes = dict(capture) if isinstance(capture, Mapping) else {}

    def probe() -> None:
        try:
            found = collect_environment(**probes)
            if run.agent["email"] is None and probes.get("git", True):
                found["agent_email"] = git_email()  # the writer fills the execution's e-mail
        except Exception as exc:  # noqa: BLE001 - the environment is best effort
            logging.getLogger("dlprov.capture").warning("dlprov: environment not captured: %s",
                                                        exc)
            return
        run.put((r.ENVIRONMENT, run.key, found))

    thread = threading.Thread(target=probe, name="dlprov-environment", daemon=True)
    thread.start()
    return thread


def attach(exec_key: str, df_tag: str, *, store: str | os.PathLike | Store | None = None,
           **options) -> Run:
    """Join, from another process, the execution whose key is ``exec_key`` (``run.key``): its
    tasks are recorded in that execution, which is neither started nor ended again here.
    Ending the attached run ends its open tasks and flushes. Used by the Parsl integration
    (torchrun's ranks need no key: :func:`run` agrees on one); the starting process should
    :meth:`Run.flush` before others attach."""
    return Run(df_tag, store=store, capture_environment=False, attach_to=exec_key, **options)


# Executions joined in this process by unpickling a Run or Task, by (pid, store URL, key): a
# forked child does not reuse its parent's (their recorder is the parent's).
_joined: dict[tuple[int, str, str], Run] = {}
_joined_lock = threading.Lock()
_ends_joined_at_exit: set[int] = set()  # the pids whose exit ends them


def _joined_run(store_url: str, key: str, df_tag: str, exec_tag: str) -> Run:
    """This process's run attached to execution ``key`` (a pickled :class:`Run` unpickles to
    it); its open tasks end, and its records are flushed, when the process exits."""
    with _joined_lock:
        found = _joined.get((os.getpid(), store_url, key))
        if found is None or found.status != RUNNING:
            if os.getpid() not in _ends_joined_at_exit:
                _ends_joined_at_exit.add(os.getpid())
                atexit.register(_end_joined)  # after the recorder's: runs before it
            found = attach(key, df_tag, store=store_url, exec_tag=exec_tag)
            _joined[(os.getpid(), store_url, key)] = found
        return found


def _joined_task(run_handle: tuple[str, str, str, str], key: str, transformation: str,
                 identifier: int) -> Task:
    """A pickled :class:`Task` in the process that unpickles it: a handle recording into the
    same task, through this process's run attached to the execution."""
    return Task.joined(_joined_run(*run_handle), key, transformation, identifier)


def _end_joined() -> None:
    with _joined_lock:
        joined = [run for (pid, _, _), run in _joined.items() if pid == os.getpid()]
        _joined.clear()
    for found in joined:
        try:
            left = any(t.status == RUNNING for t in found._open_tasks)
            found.end("the process exited before Task.end() was called" if left else None)
        except Exception:  # noqa: BLE001 - exiting anyway; say what was lost
            logging.getLogger("dlprov.capture").exception(
                "dlprov: could not end the tasks of execution %r at exit", found.exec_tag)


def run(df_tag: str, **options) -> Run:
    """Start an execution of dataflow ``df_tag``; use it as a context manager::

        with dlprov.run("mnist") as run:
            with run.task("train") as train:
                train.input("itrain", optimizer_name="adam", learning_rate=1e-3)
                train.output("otrain", epoch=1, loss=0.4, accuracy=0.9)

    Options: ``exec_tag``, ``store`` (URL or SQLite path; default ``$DLPROV_STORE`` or
    ``./dlprov.db``), ``spec`` (a :class:`DataflowSpec` declared up front), ``user``, ``email``,
    ``organization`` (else ``$DLPROV_USER``/``$DLPROV_EMAIL``/``$DLPROV_ORGANIZATION``, the login
    name and git's user.email, asked by the environment probe), ``workspace``, ``capture_environment`` (False, or a dict turning
    probes off: ``{"git": False, "gpus": False, "packages": False, "command_line": False}``),
    ``distributed`` (default: detect torchrun; False: one execution per process; True: require
    a world), ``tags`` (``{"team": "vision"}``: shown and filtered by ``dlprov runs``, exported
    to PROV) and ``notes`` (text); both can be added later (``dlprov tag``, ``dlprov note``,
    :func:`dlprov.query.runs.tag_run`). Under torchrun every rank records into ONE execution (rank 0 ends it and captures
    the environment; each task carries its rank): see :mod:`dlprov.capture.distributed`.

    A run or task handed to a process started with ``spawn`` or ``forkserver`` (pickled) records
    there into the same execution or task; the child writes what it captured when it exits
    (a worker killed first, as a ``multiprocessing.Pool`` left by its ``with`` block kills its
    workers, should call ``task.run.flush()`` before returning).
    """
    return Run(df_tag, **options)
