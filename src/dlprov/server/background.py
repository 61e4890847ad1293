"""A server on a free loopback port in a thread of this process: for tests, benchmarks and
notebooks that want a provenance service without a second process."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from dlprov.store.store import Store


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_in_thread(store: Store | str | None = None, *, token: str | None = None,
                    startup_timeout: float = 20.0, header_timeout_s: float | None = None,
                    **options: Any) -> Iterator[str]:
    """Serve ``store`` on 127.0.0.1 while the block runs; yields the base URL. ``options`` go
    to :func:`dlprov.server.app.create_app` (``allowed_hosts``, ``limits``, ...);
    ``header_timeout_s`` replaces :data:`dlprov.server.listener.HEADER_TIMEOUT_S`."""
    import uvicorn

    from dlprov.server import listener
    from dlprov.server.app import create_app

    port = free_port()
    app = create_app(store, token, bind="127.0.0.1", port=port, **options)
    server = uvicorn.Server(listener.config(
        app, "127.0.0.1", port, log_level="warning", lifespan="on",
        header_timeout_s=header_timeout_s or listener.HEADER_TIMEOUT_S))
    thread = threading.Thread(target=server.run, name="dlprov-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dlprov server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(startup_timeout)
