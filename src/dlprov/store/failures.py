"""What went wrong with a store, in one line that names it and says what to do.

Front doors (the CLI, the server) turn an error raised while a store was used — SQLAlchemy's,
the database driver's, the operating system's — into such a line instead of a traceback.
Engines (see :mod:`.engine`) mark the errors they raise with the store they were using.
"""
from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

_NOTE = "dlprov store: "

# (signs in the driver's message, what it means, what to do), first match wins.
_KINDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("file is not a database", "disk image is malformed", "not a database"),
     "is damaged or is not an SQLite database",
     "check the path (--store or $DLPROV_STORE), or restore the file from a backup"),
    (("database is locked", "database table is locked", "lock timeout"),
     "is locked by another process",
     "retry when that process is done, or wait longer with $DLPROV_BUSY_TIMEOUT (seconds)"),
    (("readonly database", "read-only file system", "read-only transaction"),
     "cannot be written here (read-only file, folder or mount)",
     "give a writable store with --store or $DLPROV_STORE"),
    (("database or disk is full", "no space left", "disk i/o error"),
     "cannot be written: the disk is full or failing",
     "free some space and retry"),
    (("unable to open database file", "permission denied", "operation not permitted"),
     "cannot be opened",
     "check that the file and its folder exist and that you may read and write them"),
    (("no such table: dataflow", "no such table: task", "no such table: dataflow_execution",
      'relation "dataflow" does not exist', 'relation "task" does not exist',
      'relation "dataflow_execution" does not exist'),
     "holds no dlprov tables",
     "check --store or $DLPROV_STORE, or record a run into it first"),
    (("password authentication failed", "no password supplied", 'role "', 'database "'),
     "refused the connection",
     "check the user, password and database in the URL"),
    (("connection", "could not connect", "timeout expired", "could not translate host name",
      "server closed", "name or service not known"),
     "cannot be reached",
     "check that the server is running and the URL's host and port"),
)


def mark(exc: BaseException, url: str) -> None:
    """Note on ``exc`` the store (by URL) it was raised for, so :func:`describe` can name it."""
    if not any(note.startswith(_NOTE) for note in getattr(exc, "__notes__", ())):
        exc.add_note(_NOTE + display_name(url))


def display_name(url: str) -> str:
    """How a store is named in messages: an SQLite file by its path, other URLs without their
    password."""
    try:
        parsed = make_url(url)
    except Exception:  # not a URL after all: show it as given
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database.removeprefix("file:")
    # The URL as users write it: postgresql://, not SQLAlchemy's postgresql+psycopg://.
    plain = parsed.set(drivername=parsed.get_backend_name())
    return plain.render_as_string(hide_password=True)


def one_line(text: str) -> str:
    """``text`` on one line: drivers' messages span several (psycopg adds hints below)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _store_of(exc: BaseException, fallback: str | None) -> str | None:
    for note in getattr(exc, "__notes__", ()):
        if note.startswith(_NOTE):
            return note[len(_NOTE):]
    return fallback


def describe(exc: BaseException, store: str | None = None) -> str | None:
    """One line for an error raised while using a store: which store (as marked by its engine,
    else ``store``), what went wrong and what to do. None when ``exc`` is no store failure."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        message = str(exc.orig)
    elif isinstance(exc, (SQLAlchemyError, sqlite3.Error)):
        message = str(exc).split("\n[SQL:")[0]
    elif isinstance(exc, OSError):
        message = exc.strerror or str(exc)
        if exc.filename:
            return one_line(f"{exc.filename}: {message}")
    else:
        return None
    message = one_line(re.sub(r"\(Background on this error at: \S+\)", "", message))
    name = _store_of(exc, store)
    subject = f"store {name}" if name else "the store"
    lowered = message.lower()
    if "unable to open database file" in lowered and name:
        lowered += _why_unopened(Path(name))
    for signs, meaning, todo in _KINDS:
        if any(sign in lowered for sign in signs):
            return f"{subject} {meaning} ({message}): {todo}"
    return f"{subject}: {message}"


def _why_unopened(path: Path) -> str:
    """SQLite says only "unable to open database file": a read-only folder or mount (where the
    journal cannot be made) is told apart from the rest by asking the system."""
    folder = path.parent
    if path.is_absolute() and folder.is_dir() and not os.access(folder, os.W_OK):
        return " read-only file system"
    return ""
