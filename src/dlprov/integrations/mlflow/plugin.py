"""MLflow's tracking-store plugin for dlprov (entry point group ``mlflow.tracking_store``).

``MLFLOW_TRACKING_URI`` then names a dlprov store:

* ``dlprov:///abs/path/dlprov.db`` or ``dlprov:relative.db``: an SQLite store;
* ``dlprov+postgresql://user@host/db``: a PostgreSQL store;
* ``dlprov+http://host:port`` (``dlprov+https``): a ``dlprov serve`` server.
"""
from __future__ import annotations

from typing import Any

SCHEME = "dlprov"


def store_url(uri: str) -> str:
    """The dlprov store URL that an MLflow tracking URI of scheme ``dlprov…`` names."""
    if uri.startswith(SCHEME + "+"):
        return uri[len(SCHEME) + 1:]
    if not uri.startswith(SCHEME + ":"):
        raise ValueError(f"{uri!r} is not a dlprov tracking URI (dlprov:///path/dlprov.db, "
                         f"dlprov+postgresql://..., dlprov+http://...)")
    rest = uri[len(SCHEME) + 1:]
    if rest.startswith("//"):  # dlprov:///abs/path -> /abs/path; dlprov://rel -> rel
        rest = rest[2:]
    if not rest:
        raise ValueError(f"{uri!r} names no store: dlprov:///path/dlprov.db")
    return rest


def tracking_store(store_uri: str, artifact_uri: str | None = None) -> Any:
    """The MLflow tracking store for ``store_uri`` (called by MLflow's store registry)."""
    from dlprov.integrations.mlflow.store import DlprovTrackingStore
    return DlprovTrackingStore(store_url(store_uri), artifact_uri)
