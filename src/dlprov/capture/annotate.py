"""Tags and notes added to an execution after it ran (``dlprov tag``, ``dlprov note``).

Written as an ``annotation`` record through the store's writer, like every other capture: the
same checks (:mod:`dlprov.model.tags`) and the same path to SQLite, PostgreSQL or a server.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from sqlalchemy import select

from dlprov.errors import NotFound
from dlprov.model import records as r
from dlprov.model.tags import check_notes, check_tags
from dlprov.store import schema as s
from dlprov.store.store import Store, as_store


def tag_run(run: str | int, tags: Mapping[str, Any], *,
            store: Store | str | os.PathLike | None = None) -> str:
    """Set tags of execution ``run`` (its exec tag or id): ``{"team": "vision"}``; a None value
    removes that tag. Returns the exec tag. Raises ``ValueRejected`` for a key that is not a
    plain name (at most 64 characters) or a value over 1 KiB, ``NotFound`` for no such run."""
    checked = check_tags(tags, removable=True)
    if not checked:
        raise ValueError("no tags given: pass key=value pairs")
    return _annotate(run, {"tags": checked}, store)


def note_run(run: str | int, text: str, *, append: bool = False,
             store: Store | str | os.PathLike | None = None) -> str:
    """Set the notes of execution ``run`` (its exec tag or id) to ``text``, or with ``append``
    add ``text`` as a new line. Returns the exec tag."""
    return _annotate(run, {"notes": check_notes(text), "append": append}, store)


def _annotate(run: str | int, fields: dict, store: Store | str | os.PathLike | None) -> str:
    store = as_store(store)
    exec_tag = exec_tag_of(store, run)
    store.writer().write([(r.ANNOTATION, exec_tag, fields)])
    return exec_tag


def exec_tag_of(store: Store, run: str | int) -> str:
    """The exec tag of execution ``run``, given by exec tag or id."""
    run = str(run)
    if store.remote:
        from dlprov.query.runs import runs_table
        found = [row["exec_tag"] for row in runs_table(store).rows
                 if run in (row["exec_tag"], str(row["id"]))]
    else:
        e = s.dataflow_execution
        with store.read() as conn:
            found = list(conn.execute(select(e.c.tag).where(e.c.tag == run)).scalars())
            if not found and run.isdigit():
                found = list(conn.execute(select(e.c.tag).where(e.c.id == int(run))).scalars())
    if not found:
        raise NotFound(f"no execution {run!r} in the store: see `dlprov runs`")
    return found[0]
