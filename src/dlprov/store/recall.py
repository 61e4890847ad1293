"""What a recorder remembers of its live runs, so that a store that lost them can get them back.

A store file removed or replaced while a run records (or a run's start written by a parent
process before a fork) leaves later records pointing at an execution or task the store does not
hold. The writer then sends again, from here, the few records that made them (the latest spec,
the execution's and tasks' starts: idempotent inserts), and the later records find what they
need. Records the store refused are remembered too, so that what depends on them is set aside
at once, with the reason, instead of failing one by one.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Recall:
    """The start records of one recorder's live executions and tasks, and its refusals.

    Filled by :class:`~dlprov.store.writer.StoreWriter` as it applies records; an execution
    and its tasks are forgotten when the execution ends. Shared by the writers a recorder makes
    one after another (a writer is made afresh after each failure)."""

    specs: dict[str, dict] = field(default_factory=dict)   # df_tag -> latest spec snapshot
    execs: dict[str, dict] = field(default_factory=dict)   # exec key -> EXEC_START fields
    tasks: dict[str, dict] = field(default_factory=dict)   # task key -> TASK_START fields
    #: keys of executions and tasks whose start the store refused -> the reason
    refused_keys: dict[str, str] = field(default_factory=dict)
    #: (df_tag, set_tag) -> (attribute names tried, reason) of sets whose table was refused
    refused_sets: dict[tuple[str, str], tuple[frozenset, str]] = field(default_factory=dict)
    #: executions and tasks recorded again into a store that had lost them (for the log)
    resent: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def forget_execution(self, key: str) -> None:
        """The execution ended: its start and its tasks' starts are no longer needed."""
        with self._lock:
            self.execs.pop(key, None)
            for task_key in [k for k, fields in self.tasks.items()
                             if fields.get("exec_key") == key]:
                del self.tasks[task_key]

    def copy(self) -> "Recall":
        """An independent copy (a forked child's recorder keeps its parent's memory)."""
        return Recall(dict(self.specs), dict(self.execs), dict(self.tasks),
                      dict(self.refused_keys), dict(self.refused_sets))
