"""Stores for the UI tests, filled through the real capture API, and a live UI server."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dlprov
from dlprov.model.spec import Attribute, AttributeType, DataflowSpec
from tests.prov.workflows import experiment

PAYLOAD = '<script>window.__xss=1</script><img src=x "onerror=window.__xss=2>'


def demo_store(root: Path) -> str:
    """Two candidates of dataflow ``exp`` (tests/prov/workflows.py: preprocessing chains,
    three and two epochs, a model file each, a test) and a run whose values, user, tags and
    an attribute's label hold markup."""
    store = str(root / "ui.db")
    experiment(root / "work", store)
    hostile(store)
    return store


def hostile(store: str) -> None:
    """A run of dataflow ``xss`` recording :data:`PAYLOAD` wherever text may go: a set value,
    the user, a tag key and value, the notes, and an attribute's label (the name it was made
    for, shown on the dataflow page)."""
    spec = DataflowSpec("xss")
    spec.add_transformation("train")
    spec.add_set("itrain", [Attribute("note", AttributeType.TEXT, label=PAYLOAD),
                            Attribute("learning_rate", AttributeType.NUMERIC)])
    spec.add_role("train", "itrain", "input")
    with dlprov.run("xss", store=store, spec=spec, exec_tag="xss-1", user=PAYLOAD,
                    tags={"team": PAYLOAD}, notes=PAYLOAD,
                    capture_environment=False) as run:
        with run.task("train") as train:
            train.input("itrain", note=PAYLOAD, learning_rate=0.5)
            train.output("otrain", epoch=1, loss=0.5, accuracy=0.25)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_ui(store: str, token: str | None = None) -> Iterator[str]:
    """``dlprov ui``'s app served by uvicorn in a thread; yields its base URL."""
    import uvicorn

    from dlprov.ui.app import create_ui
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_ui(store, token, port=port), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the UI server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
