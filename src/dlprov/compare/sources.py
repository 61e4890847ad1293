"""Where a trace is read from: a database store, a ``dlprov serve`` server, or a model package.

A package (``dlprov package``) holds ``provenance.db``, an SQLite extract of the store with the
model's whole trace: it is checked against the manifest, opened as untrusted input (no views or
triggers, every query under a time limit) and read like any store, so that a package and the
store it came from give the same trace. A server answers ``GET /v1/trace`` with
:func:`trace_answer`, run on its own store.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.exc import OperationalError

from dlprov.compare.trace import read_trace
from dlprov.store.store import Store, as_store

#: the path of the server's trace endpoint (see :func:`trace_answer`)
TRACE_PATH = "/v1/trace"


def is_package(name: str) -> bool:
    """Whether ``name`` is a model package on disk (a zip holding a dlprov manifest)."""
    path = Path(str(name))
    if path.suffix.lower() != ".zip" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "manifest.json" in zf.NameToInfo
    except (OSError, zipfile.BadZipFile):
        return False


def load_trace(name: str, *, store: Store | str | None = None, runs: bool = False,
               dataflow: str | None = None) -> dict[str, Any]:
    """The trace of ``name``: a package file, else a model (or with ``runs`` an execution) of
    ``store`` (a database or a server)."""
    if not runs and is_package(name):
        return package_trace(name)
    store = as_store(store)
    if store.remote:
        return _remote_trace(store, name, runs, dataflow)
    return read_trace(store, name, runs=runs, dataflow=dataflow)


def trace_answer(store: Store | str | None, name: str, runs: bool = False,
                 dataflow: str | None = None) -> dict[str, Any]:
    """What a server answers to ``GET /v1/trace?name=…&runs=…&dataflow=…``: the trace, read
    from its own store."""
    return read_trace(store, name, runs=runs, dataflow=dataflow)


def _remote_trace(store: Store, name: str, runs: bool, dataflow: str | None) -> dict[str, Any]:
    from dlprov.errors import NotFound, StoreUnavailable
    from dlprov.store import http
    query = {"name": name, "runs": "true" if runs else "false",
             **({"dataflow": dataflow} if dataflow else {})}
    try:
        found = http.get_json(store.url, f"{TRACE_PATH}?{urlencode(query)}")
    except StoreUnavailable as exc:
        if " 404 " in str(exc):
            raise StoreUnavailable(f"the dlprov server {store.url} cannot compare: it has no "
                                   f"{TRACE_PATH} (an older dlprov)") from None
        raise
    if found is None:
        raise NotFound(f"the dlprov server {store.url} knows no "
                       f"{'execution' if runs else 'model'} {name!r}, or has no {TRACE_PATH}")
    return found


def package_trace(path: str | os.PathLike) -> dict[str, Any]:
    """The trace of the model a package holds, read from its extract (checked against the
    manifest first). Raises :class:`PackageError` for a damaged or foreign file."""
    from dlprov.prov.archive import PackageError
    from dlprov.prov.package import EXTRACT, packaged_store

    where = os.fspath(path)
    with packaged_store(path) as (store, manifest):
        model = manifest["model"]
        try:
            trace = read_trace(store, model.get("model_id") or model.get("name"),
                               dataflow=manifest.get("dataflow"))
        except OperationalError as exc:
            raise PackageError(f"{where}: {EXTRACT} cannot be read: {exc}") from None
    trace["label"] = where
    return trace
