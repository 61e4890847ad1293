"""How the server listens: uvicorn's HTTP/1.1 protocol with dlprov's bounds on slow clients.

The body of a request is bounded by :class:`dlprov.server.guards.RequestGuard`; what comes
before it is bounded here: a request's headers hold at most :data:`MAX_HEADER_BYTES` (h11
answers 400 beyond) and must arrive within :data:`HEADER_TIMEOUT_S` of the connection opening
(or of the previous answer on a kept-alive connection); an idle kept-alive connection is closed
after :data:`KEEP_ALIVE_S`.
"""
from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
MAX_HEADER_BYTES = 16 * 1024


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not all there
    :data:`HEADER_TIMEOUT_S` after it opened or after its previous answer (uvicorn's own
    keep-alive timer stops at the first byte, so a client sending one byte at a time would
    hold the connection for ever)."""

    header_timeout_s = HEADER_TIMEOUT_S
    _headers_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
        self._headers_due = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        # IDLE: h11 has not seen a whole request line and headers since the timer started.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.warning("closing a connection whose request headers did not arrive "
                                "within %s s", self.header_timeout_s)
            self.transport.close()


def config(app: Any, host: str, port: int, *, header_timeout_s: float = HEADER_TIMEOUT_S,
           **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for serving ``app`` on ``host:port`` with the bounds above
    (``options``: more of uvicorn's, such as ``log_level``)."""
    protocol = BoundedH11Protocol if header_timeout_s == HEADER_TIMEOUT_S else type(
        "BoundedH11Protocol", (BoundedH11Protocol,), {"header_timeout_s": header_timeout_s})
    return uvicorn.Config(app, host=host, port=port, http=protocol,
                          timeout_keep_alive=KEEP_ALIVE_S,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, **options)
