"""A server on a free loopback port in a thread of this process: for tests, benchmarks and
notebooks that want a provenance service without a second process."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from dlprov.store.store import Store


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_in_thread(store: Store | str | None = None, *, token: str | None = None,
                    startup_timeout: float = 20.0) -> Iterator[str]:
    """Serve ``store`` on 127.0.0.1 while the block runs; yields the base URL."""
    import uvicorn

    from dlprov.server.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, token), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
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
