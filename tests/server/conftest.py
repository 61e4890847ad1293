"""A real dlprov server on a free loopback port, for tests that speak plain HTTP to it."""
from __future__ import annotations

from typing import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from dlprov.server.background import serve_in_thread  # noqa: E402


@pytest.fixture
def server(store_path, monkeypatch) -> Iterator[str]:
    """The base URL of a server over the test's store, stopped afterwards."""
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    with serve_in_thread(str(store_path)) as url:
        yield url
