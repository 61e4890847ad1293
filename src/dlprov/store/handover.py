"""What a closed writer knew of a store's dataflows, handed to the next writer of that store in
the same process.

A writer learns each dataflow's stored spec (read and parsed from its JSON), builds the set
tables' statements and looks up catalogue ids: a few milliseconds of the recorder's thread,
which every new writer paid again, so a process running many short runs with a recorder each
paid them per run. A writer that is closed in good order hands these caches back; the next
writer of the same store takes them (one writer at a time: taking removes them) and, in its
first transaction, keeps them only if the store still holds each dataflow at the same id and
spec version, in the same SQLite file. Otherwise it starts empty and reads the store, as it
always did. A writer whose transaction failed drops its caches and hands nothing back.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from dlprov.store.engine import file_identity, sqlite_file
from dlprov.store.statements import run


@dataclass(frozen=True)
class Handed:
    """A writer's caches (see :class:`~dlprov.store.writer.StoreWriter`), as it left them."""

    file: tuple[int, int] | None  # the SQLite file's (device, inode); None for PostgreSQL
    dataflows: dict[str, Any]     # df tag -> the writer's _Dataflow (id, version, spec)
    tables: dict
    ids: dict
    specs_seen: dict


_handed: dict[str, Handed] = {}
_lock = threading.Lock()


def store_key(engine: Engine) -> str:
    """The registry's key of ``engine``'s store: its full URL."""
    return engine.url.render_as_string(hide_password=False)


def file_of(engine: Engine) -> tuple[int, int] | None:
    """The (device, inode) of an SQLite store's file, None for another database (or none)."""
    database = sqlite_file(engine.url)
    return file_identity(database) if database else None


def hand_back(engine: Engine, handed: Handed) -> None:
    """Keep ``handed`` for the next writer of ``engine``'s store (the newest wins)."""
    with _lock:
        _handed[store_key(engine)] = handed


def take(engine: Engine) -> Handed | None:
    """What the last closed writer of ``engine``'s store handed back, removed from the
    registry (so no two writers share caches); None if nothing was."""
    with _lock:
        return _handed.pop(store_key(engine), None)


def still_true(conn: Connection, handed: Handed) -> bool:
    """Whether the store behind ``conn`` still holds every dataflow of ``handed`` at the same
    id and latest spec version, in the same file: then the caches describe it."""
    if handed.file != file_of(conn.engine):
        return False
    if not handed.dataflows:
        return True
    tags = list(handed.dataflows)
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    # driver-level: built and compiled once per writer, a statement object cost more than it
    stored = set(map(tuple, run(
        conn, "SELECT d.tag, d.id, MAX(v.version) FROM dataflow d "
        "JOIN dataflow_version v ON v.df_id = d.id "
        f"WHERE d.tag IN ({', '.join([marker] * len(tags))}) GROUP BY d.tag, d.id",
        tuple(tags)).fetchall()))
    return stored == {(tag, found.id, found.version) for tag, found in handed.dataflows.items()}
