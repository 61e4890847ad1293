"""A run whose records are collected in memory instead of queued for the recorder, so that
an importer writes each imported run in one transaction (all of it, or nothing).

It is a :class:`dlprov.capture.run.Run` in every other respect: tasks, elements, trained
models and spec inference go through capture's own checks. Its keys are derived from a seed
(an MLflow run id), so that importing the same run again makes the same keys.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from itertools import count
from typing import Any, Mapping

from dlprov.capture.run import Run
from dlprov.capture.specbook import specbook_for
from dlprov.capture.task import RUNNING
from dlprov.model import records as r
from dlprov.model.names import check_name
from dlprov.model.tags import check_notes, check_tags
from dlprov.store.store import Store

#: The namespace of the keys derived from seeds (uuid5).
NAMESPACE = uuid.UUID("6f1c2a53-8f0e-4d8e-9a57-4d6c70726f76")


def derived_key(seed: str, number: int) -> str:
    """The ``number``-th key (0: the execution, 1: its first task, ...) of the run seeded
    ``seed``."""
    return uuid.uuid5(NAMESPACE, f"{seed}:{number}").hex


class _Held:
    """Stands in for the recorder: a collected run is written by its importer."""

    @staticmethod
    def flush(wait: bool = True, timeout: float | None = None) -> bool:
        return True


class CollectedRun(Run):
    """An execution of ``df_tag`` tagged ``exec_tag`` whose records land in :attr:`records`.

    ``fields`` are the execution's own (``start_time``, ``username``, ``hostname``, ...).
    Call :meth:`end` when done, then write :attr:`records` with the store's writer."""

    def __init__(self, store: Store, df_tag: str, exec_tag: str, seed: str, *,
                 fields: Mapping[str, Any], tags: Mapping[str, Any] | None = None,
                 notes: str | None = None, label: str | None = None) -> None:
        # Not Run.__init__: that one starts the execution through the process's recorder.
        self.df_tag = check_name("dataflow", df_tag)
        self.tags, self.notes = check_tags(tags), check_notes(notes)
        self.store = store
        self.attached, self.world = False, None
        self._seed, self._numbers = seed, count()
        self.key = self.new_key()
        self.exec_tag = exec_tag
        self.start_time = fields.get("start_time") or datetime.now()
        self.hostname = fields.get("hostname")
        self.workspace = fields.get("workspace")
        self.agent = {k: fields.get(k) for k in ("username", "email", "organization")}
        self.username = self.agent["username"]
        self.status = RUNNING
        self.book = specbook_for(store, self.df_tag)
        with self.book.lock:
            if self.book.spec.label is None and label and label != self.df_tag:
                self.book.spec.label = label
        self.seen_sets: set[str] = set()
        self.records: list[tuple] = []
        self.put = self.records.append
        self.recorder = _Held()
        self._identifiers = count(1)
        self._open_tasks = []
        self._environment = None
        self.send_spec()
        self.put((r.EXEC_START, self.key, {
            "tag": exec_tag, "df_tag": self.df_tag, "start_time": self.start_time,
            "hostname": self.hostname, "pid": None, "workspace": self.workspace, **self.agent,
            **({"tags": self.tags} if self.tags else {}),
            **({"notes": self.notes} if self.notes is not None else {})}))

    def new_key(self) -> str:  # type: ignore[override]
        return derived_key(self._seed, next(self._numbers))

    def environment(self, fields: Mapping[str, Any]) -> None:
        """Record the execution's environment (``git_commit``, ``command_line``, ...)."""
        if fields:
            self.put((r.ENVIRONMENT, self.key, dict(fields)))

    def retime(self, start: datetime | None, end: datetime | None) -> None:
        """Give the execution and its tasks the times they had where they ran (capture stamps
        them with the time of the import)."""
        for record in self.records:
            kind = record[0]
            if kind in (r.EXEC_START, r.TASK_START) and start is not None:
                record[2]["start_time"] = start
            elif kind in (r.EXEC_END, r.TASK_END) and end is not None:
                record[2]["end_time"] = end

    def rename_model(self, model_id: str, new_id: str, path: str | None = None) -> None:
        """Give the trained model recorded as ``model_id`` the id ``new_id`` (the tracker's
        own) and, with ``path``, the location the tracker gave (a URI that is no local file)."""
        for record in self.records:
            if record[0] == r.MODEL and record[2].get("model_id") == model_id:
                record[2]["model_id"] = new_id
                if path is not None:
                    record[2]["path"] = path
            elif record[0] == r.ELEMENT and record[3].get("model_id") == model_id:
                record[3]["model_id"] = new_id
                if path is not None:
                    record[3]["model_dir"] = path
