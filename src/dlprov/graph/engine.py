"""Where the graph lives: a cached database per dataflow in a private folder, kept up to date
incrementally, or a throw-away one for a run, a model trace or a PROV-JSON file. Queries get the
graph opened read-only.

The cache of an SQLite store ``lab.db`` is ``lab.db.graph/<df_tag>/`` beside it; of a
PostgreSQL or server store, ``<cache>/graph/<hash of its URL>/<df_tag>/`` under dlprov's cache
folder (:func:`dlprov.localfiles.cache_root`). Every folder on the way is private (mode 0700,
the user's own, not a symbolic link: :func:`dlprov.localfiles.private_dir`), so another local
user can neither plant a link that makes dlprov delete or write elsewhere, nor change the graph
under the user's queries; the files in it are removed and replaced without following links.
Beside the database, ``watermark.json`` lists the finished executions loaded, each with its
status, end time and task count. Each call adds the executions that finished since (their run
documents, merged); when a loaded execution changed or disappeared, or a new attribute clashes
with a column's type, the graph is rebuilt from scratch. Running executions are left out until
they end.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import ladybug
from sqlalchemy import func, select

from dlprov.graph.build import TypeConflict, create_schema, flatten, load, load_documents
from dlprov.localfiles import private_cache, private_dir, private_tempdir
from dlprov.prov.export import read_document
from dlprov.prov.mapping import document
from dlprov.query.catalogue import choose_dataflow
from dlprov.store import schema as s
from dlprov.store.store import Store, as_store

WATERMARK = "watermark.json"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def _folder_name(df_tag: str) -> str:
    """``df_tag`` when it is a plain file name, else a hash of it: a tag read from a store
    (``../x``) never names a folder outside the cache."""
    if _PLAIN_NAME.fullmatch(df_tag):
        return df_tag
    return "df-" + hashlib.sha256(df_tag.encode()).hexdigest()[:16]


def cache_dir(store: Store, df_tag: str) -> Path:
    """The private folder of the cached graph of ``df_tag``, made if missing (see the module's
    docstring). Raises :class:`dlprov.localfiles.UnsafeFolder` when it, or the folder above it,
    is a symbolic link or another user's."""
    if store.backend == "sqlite" and not store.remote:
        base = private_dir(store.url.removeprefix("sqlite:///") + ".graph")
    else:
        base = private_cache("graph", hashlib.sha256(store.url.encode()).hexdigest()[:16])
    return private_dir(base / _folder_name(df_tag))


def _empty(folder: Path) -> None:
    """Remove what ``folder`` holds, never following a link (a link is removed, not its target;
    ``shutil.rmtree`` works through file descriptors where the platform allows)."""
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _read_marks(path: Path) -> dict[str, Any] | None:
    """The watermark, or None when it is missing, unreadable, not a JSON object or a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as file:
            found = json.load(file)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _write_marks(path: Path, marks: dict[str, Any]) -> None:
    """Replace the watermark atomically: a fresh file (never through a link), renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(marks, file, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _finished(store: Store, df_tag: str) -> dict[str, dict[str, object]]:
    """exec tag -> its status, end time and task count, for finished executions."""
    e, t, d = s.dataflow_execution, s.task, s.dataflow
    tasks = (select(func.count()).where(t.c.exec_id == e.c.id).scalar_subquery())
    with store.read() as conn:
        rows = conn.execute(select(e.c.tag, e.c.uuid, e.c.status, e.c.end_time, tasks)
                            .join(d, d.c.id == e.c.df_id).where(d.c.tag == df_tag)
                            .where(e.c.end_time.is_not(None))).all()
    return {row.tag: {"uuid": row.uuid, "status": row.status, "end_time": str(row.end_time),
                      "tasks": row[4]} for row in rows}


@contextmanager
def _opened(path: Path, *, read_only: bool) -> Iterator[ladybug.Connection]:
    db = ladybug.Database(str(path), read_only=read_only)
    conn = ladybug.Connection(db)
    try:
        yield conn
    finally:
        conn.close()
        db.close()


def refresh(store: Store | str | None = None, dataflow: str | None = None) -> Path:
    """Bring the cached graph of ``dataflow`` (default: the only or most recent one) up to date
    with the store; return its database path."""
    store = as_store(store)
    with store.read() as conn:
        df_tag = choose_dataflow(conn, dataflow).tag
    folder = cache_dir(store, df_tag)
    marks_file, db_path = folder / WATERMARK, folder / "db"
    now = _finished(store, df_tag)
    loaded = _read_marks(marks_file)
    if loaded is not None and any(now.get(tag) != mark for tag, mark in loaded.items()):
        loaded = None  # a loaded execution changed or went away: the watermark cannot tell
    if loaded is None or not _is_file(db_path):
        _empty(folder)
        loaded = {}
    new = [tag for tag in now if tag not in loaded]
    if new or not _is_file(db_path):
        try:
            _add(db_path, store, new, fresh=not loaded)
        except TypeConflict:
            _empty(folder)
            _add(db_path, store, list(now), fresh=True)
            new, loaded = list(now), {}
        loaded.update({tag: now[tag] for tag in new})
        _write_marks(marks_file, loaded)
    return db_path


def _add(db_path: Path, store: Store, tags: list[str], *, fresh: bool) -> None:
    docs = [document(store, run=tag) for tag in tags]
    with _opened(db_path, read_only=False) as conn:
        if fresh:
            load_documents(conn, docs)
        else:
            create_schema(conn)
            for doc in docs:
                load(conn, flatten(doc))


@contextmanager
def connect(store: Store | str | None = None, *, dataflow: str | None = None,
            run: str | int | None = None, model: str | None = None,
            source: str | Path | None = None) -> Iterator[ladybug.Connection]:
    """A read-only connection to the graph of a dataflow (cached, see :func:`refresh`), or of
    one run, one model's trace or a PROV-JSON file ``source`` (built in a private temporary
    folder, :func:`dlprov.localfiles.private_tempdir`, removed afterwards). A write through it
    fails (ladybug's read-only mode); :func:`dlprov.graph.cypher` also refuses file access."""
    if run is None and model is None and source is None:
        with _opened(refresh(store, dataflow), read_only=True) as conn:
            yield conn
        return
    if source is not None:
        doc = read_document(source)
    else:
        doc = document(store, dataflow=dataflow, run=run, model=model)
    with private_tempdir("graph-") as tmp:
        with _opened(tmp / "db", read_only=False) as conn:
            load_documents(conn, [doc])
        with _opened(tmp / "db", read_only=True) as conn:
            yield conn
