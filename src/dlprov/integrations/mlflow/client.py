"""Opening an MLflow tracking store for reading, through ``MlflowClient``.

A SQLite database (``sqlite:///mlflow.db``), a file store (``./mlruns``, ``file:///…``) or an
MLflow server (``http://…``). MLflow 3 refuses file stores unless
``MLFLOW_ALLOW_FILE_STORE=true``: :func:`open_client` sets it for reading one, and says so.
A store that is not there is refused here, in one line: MLflow itself would make an empty one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dlprov.errors import StoreUnavailable

#: The MLflow versions this bridge is tested with.
SUPPORTED = "MLflow 3.x (tested with mlflow-skinny 3.17)"
FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"


@dataclass
class Opened:
    """A client on one tracking store, and what opening it had to do (``notes``)."""

    client: Any
    uri: str
    notes: list[str] = field(default_factory=list)


def require_mlflow() -> Any:
    """The ``mlflow`` module, or a one-line error saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise StoreUnavailable("MLflow is not installed: pip install 'dlprov[mlflow]' "
                               f"({SUPPORTED})") from None
    return mlflow


def local_path(uri: str) -> Path | None:
    """The local path a ``file:`` URI or a plain path names; None for any other URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme or len(parsed.scheme) == 1:  # a path (C:\ on Windows)
        return Path(uri)
    return None


def open_client(uri: str, *, must_exist: bool = True) -> Opened:
    """An ``MlflowClient`` on ``uri``, checked to answer; raises :class:`StoreUnavailable`
    (one line) for a store that is missing (with ``must_exist``: reading), unreadable or
    unreachable. Without ``must_exist`` (writing), MLflow makes a missing SQLite or file
    store."""
    require_mlflow()
    from mlflow.tracking import MlflowClient
    notes: list[str] = []
    parsed = urlparse(uri)
    path = local_path(uri)
    if path is not None:  # a file store
        if must_exist and not (path / "0").is_dir() and not any(path.glob("*/meta.yaml")):
            raise StoreUnavailable(f"{uri} is not an MLflow file store (no experiment "
                                   f"folders with meta.yaml in {path})")
        if os.environ.get(FILE_STORE_ENV, "").lower() not in ("true", "1"):
            os.environ[FILE_STORE_ENV] = "true"
            notes.append(f"reading the file store {path} with {FILE_STORE_ENV}=true (MLflow 3 "
                         f"refuses file stores without it)")
        uri = path.resolve().as_uri()
    elif parsed.scheme.startswith("sqlite"):
        database = unquote(parsed.path)[1:] if parsed.path.startswith("/") else parsed.path
        if must_exist and database and database != ":memory:" and not Path(database).is_file():
            raise StoreUnavailable(f"{uri}: no such MLflow database ({database})")
    elif parsed.scheme in ("http", "https"):
        # A server that is down should fail in seconds, not after MLflow's retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    client = MlflowClient(tracking_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; one line says which
        raise StoreUnavailable(f"cannot read MLflow tracking store {uri}: "
                               f"{_first_line(exc)}") from None
    return Opened(client, uri, notes)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
