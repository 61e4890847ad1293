"""Shared fixtures: every test gets its own real SQLite store file."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Path of a fresh SQLite store, also set as ``$DLPROV_STORE``; cwd is ``tmp_path``."""
    path = tmp_path / "dlprov.db"
    monkeypatch.setenv("DLPROV_STORE", str(path))
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def sql(store_path: Path):
    """Run SQL on the store file directly with sqlite3 (no dlprov code in between)."""
    def query(statement: str, *params):
        with sqlite3.connect(store_path) as conn:
            return conn.execute(statement, params).fetchall()
    return query
