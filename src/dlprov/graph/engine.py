"""Where the graph lives: a cached database per dataflow next to the store, kept up to date
incrementally, or a throw-away one for a run, a model trace or a PROV-JSON file.

The cache of an SQLite store ``lab.db`` is ``lab.db.graph/<df_tag>/``; of a PostgreSQL store,
a folder under the system's temporary directory named after a hash of its URL. Beside the
database, ``watermark.json`` lists the finished executions loaded, each with its status, end
time and task count. Each call adds the executions that finished since (their run documents,
merged); when a loaded execution changed or disappeared, or a new attribute clashes with a
column's type, the graph is rebuilt from scratch. Running executions are left out until they end.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import ladybug
from sqlalchemy import func, select

from dlprov.graph.build import TypeConflict, create_schema, flatten, load, load_documents
from dlprov.prov.export import read_document
from dlprov.prov.mapping import document
from dlprov.query.catalogue import choose_dataflow
from dlprov.store import schema as s
from dlprov.store.store import Store, as_store

WATERMARK = "watermark.json"


def cache_dir(store: Store, df_tag: str) -> Path:
    """The folder of the cached graph of ``df_tag``."""
    if store.backend == "sqlite" and not store.remote:
        base = Path(store.url.removeprefix("sqlite:///") + ".graph")
    else:
        digest = hashlib.sha256(store.url.encode()).hexdigest()[:16]
        base = Path(tempfile.gettempdir()) / f"dlprov-graph-{digest}"
    return base / df_tag


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


def _open(path: Path) -> tuple[ladybug.Database, ladybug.Connection]:
    db = ladybug.Database(str(path))
    return db, ladybug.Connection(db)


def refresh(store: Store | str | None = None, dataflow: str | None = None) -> Path:
    """Bring the cached graph of ``dataflow`` (default: the only or most recent one) up to date
    with the store; return its database path."""
    store = as_store(store)
    with store.read() as conn:
        df_tag = choose_dataflow(conn, dataflow).tag
    folder = cache_dir(store, df_tag)
    marks_file, db_path = folder / WATERMARK, folder / "db"
    now = _finished(store, df_tag)
    try:
        loaded = json.loads(marks_file.read_text())
    except (OSError, ValueError):
        loaded = None
    if loaded is not None and any(now.get(tag) != mark for tag, mark in loaded.items()):
        loaded = None  # a loaded execution changed or went away: the watermark cannot tell
    if loaded is None:
        shutil.rmtree(folder, ignore_errors=True)
        loaded = {}
    new = [tag for tag in now if tag not in loaded]
    if new or not db_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            _add(db_path, store, new, fresh=not loaded)
        except TypeConflict:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            _add(db_path, store, list(now), fresh=True)
            new, loaded = list(now), {}
        loaded.update({tag: now[tag] for tag in new})
        marks_file.write_text(json.dumps(loaded, indent=1, sort_keys=True))
    return db_path


def _add(db_path: Path, store: Store, tags: list[str], *, fresh: bool) -> None:
    docs = [document(store, run=tag) for tag in tags]
    db, conn = _open(db_path)
    try:
        if fresh:
            load_documents(conn, docs)
        else:
            create_schema(conn)
            for doc in docs:
                load(conn, flatten(doc))
    finally:
        conn.close()
        db.close()


@contextmanager
def connect(store: Store | str | None = None, *, dataflow: str | None = None,
            run: str | int | None = None, model: str | None = None,
            source: str | Path | None = None) -> Iterator[ladybug.Connection]:
    """A connection to the graph of a dataflow (cached, see :func:`refresh`), or of one run, one
    model's trace or a PROV-JSON file ``source`` (built in a temporary folder)."""
    if run is None and model is None and source is None:
        db, conn = _open(refresh(store, dataflow))
        try:
            yield conn
        finally:
            conn.close()
            db.close()
        return
    if source is not None:
        doc = read_document(source)
    else:
        doc = document(store, dataflow=dataflow, run=run, model=model)
    with tempfile.TemporaryDirectory(prefix="dlprov-graph-") as tmp:
        db, conn = _open(Path(tmp) / "db")
        try:
            load_documents(conn, [doc])
            yield conn
        finally:
            conn.close()
            db.close()
