"""A remote store: a ``dlprov serve`` server reached over HTTP (``http://host:port``).

Training scripts capture into it through the normal recorder: :class:`HttpWriter` has the
:class:`~dlprov.store.writer.StoreWriter` contract, so batching, async writing and spooling on
failure come from the recorder. A refusal of the content (HTTP 4xx but 401/403/408/429...) raises
:class:`ValueRejected`, which the recorder sets aside; anything else (no answer, 5xx, a wrong
token) raises :class:`StoreUnavailable`, and the records are spooled until the server answers.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from dlprov.errors import StoreUnavailable, ValueRejected
from dlprov.model.records import MODEL
from dlprov.recorder.spool import encode
from dlprov.store.files import file_digest
from dlprov.store.writer import Applied

TOKEN_ENV = "DLPROV_TOKEN"
TIMEOUT_S = 30.0
_PASSING = frozenset({401, 403, 407, 408, 421, 425, 429})


def _client(base_url: str):
    import httpx
    token = os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT_S)


def _message(response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except (ValueError, AttributeError):
        return response.text[:500]


def request(base_url: str, method: str, path: str, *, client: Any = None, **options: Any):
    """One request to the server, on ``client`` (an ``httpx.Client`` kept by the caller) or a
    client of its own; raises StoreUnavailable if it does not answer."""
    import httpx
    try:
        if client is not None:
            return client.request(method, path, **options)
        with _client(base_url) as own:
            return own.request(method, path, **options)
    except httpx.HTTPError as exc:
        raise StoreUnavailable(f"no answer from dlprov server {base_url}: {exc}") from exc


def get_json(base_url: str, path: str) -> Any | None:
    """The JSON answer to ``GET path``; None if the server answers 404."""
    response = request(base_url, "GET", path)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise StoreUnavailable(f"dlprov server {base_url} answered {response.status_code} to "
                               f"GET {path}: {_message(response)}")
    return response.json()


def segment(text: str) -> str:
    return quote(text, safe="")


class HttpWriter:
    """The :class:`~dlprov.store.writer.StoreWriter` contract over HTTP: ``POST /v1/batch``
    applies ``(batch_id, records)`` pairs in one transaction (exactly once per batch id)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        # One client for all batches: its connection stays open between them, and building a
        # client (its TLS context) costs milliseconds, more than a batch of 10,000 takes.
        self._client = None

    def write(self, batch: Sequence[tuple], batch_id: str | None = None) -> None:
        self.write_batches([(batch_id, batch)])

    def write_batches(self, batches: Iterable[tuple[str | None, Sequence[tuple]]]) -> int:
        body = {"batches": [[b, [encode(_with_digest(r)) for r in records]]
                            for b, records in batches]}
        return int(self._post("/v1/batch", body)["written"])

    def apply_batches(self, batches: Iterable[tuple[str | None, Sequence[tuple]]]) -> Applied:
        """:meth:`write_batches`, as :meth:`StoreWriter.apply_batches
        <dlprov.store.writer.StoreWriter.apply_batches>` answers: the server applies a request
        whole or not at all, so a refusal raises (the recorder then splits the batches)."""
        return Applied(self.write_batches(batches), [])

    def applied(self, batch_ids: Iterable[str]) -> set[str]:
        return set(self._post("/v1/applied", {"ids": list(batch_ids)})["applied"])

    def close(self) -> None:
        """Close the connection to the server (a later batch opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _post(self, path: str, body: Any) -> Any:
        if self._client is None:
            self._client = _client(self.base_url)
        content = json.dumps(body, allow_nan=True, separators=(",", ":"))
        try:
            response = request(self.base_url, "POST", path, client=self._client,
                               content=content, headers={"Content-Type": "application/json"})
        except StoreUnavailable:
            self.close()  # the next batch starts on a fresh connection
            raise
        if response.status_code == 200:
            return response.json()
        message = (f"dlprov server {self.base_url} answered {response.status_code}: "
                   f"{_message(response)}")
        # The server refuses the content (4xx): the recorder splits the batch down to the
        # records refused. A wrong token, a timeout or too many requests pass: kept, retried.
        if 400 <= response.status_code < 500 and response.status_code not in _PASSING:
            raise ValueRejected(message)
        raise StoreUnavailable(message)


def _with_digest(record: tuple) -> tuple:
    """A MODEL record with its file's size and sha256, read here, beside the file: the server
    never reads paths its clients send."""
    if record[0] != MODEL or "sha256" in record[2]:
        return record
    return (record[0], record[1], {**record[2], **file_digest(record[2]["path"])})
