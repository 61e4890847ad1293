"""A real dlprov server on a free loopback port, for tests that speak plain HTTP to it."""
from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from dlprov.server.app import create_app  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(store_path, monkeypatch) -> Iterator[str]:
    """The base URL of a server over the test's store, stopped afterwards."""
    monkeypatch.setenv("DLPROV_CAPTURE_ENVIRONMENT", "0")
    port = _free_port()
    config = uvicorn.Config(create_app(str(store_path)), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(20)
