"""The checks every HTTP front door of dlprov puts before its handlers (the server's API, the
web UI to come): one ASGI middleware, :class:`RequestGuard`, configured by a :class:`Policy`.

In order, for every request:

1. ``Host`` must name an address the server serves (421 otherwise): a web page whose name was
   re-pointed at 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
2. ``Origin``, when a browser sends one, must be one of those addresses too, or one configured
   (403 otherwise); no CORS header is ever sent, so no other page can read an answer.
3. With a token, ``Authorization: Bearer <token>`` is needed everywhere but ``/health``
   (401), the OpenAPI pages included; compared in constant time.
4. A write (any method but GET, HEAD, OPTIONS) must be ``application/json`` (415): a browser
   can only send a cross-site request without asking first (a CORS-simple one) with a form or
   text type, so no page can write.
5. The body is read here, counted as it streams in, whether or not it declares its length:
   past :attr:`Limits.max_body_bytes` it is answered 413 at once and the connection closed;
   a client that sends nothing for :attr:`Limits.body_idle_s` (or takes longer than
   :attr:`Limits.body_total_s` in all) is answered 408. A JSON body nested deeper than
   :attr:`Limits.max_json_depth` (422) or holding more than :attr:`Limits.max_json_values`
   values (413) is refused before it is parsed.

Mount it with ``app.add_middleware(RequestGuard, policy=Policy(...))``.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import re
import socket
import time
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/health"})  # answered without the token
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Limits:
    """Bounds on one request's body."""

    max_body_bytes: int = 64 << 20
    max_json_depth: int = 64
    max_json_values: int = 1_000_000
    body_idle_s: float = 30.0  # longest wait for the next piece of the body
    body_total_s: float = 300.0  # longest time to receive the whole body


@dataclass(frozen=True)
class Policy:
    """What a front door lets in: the address it is bound to (``bind``, ``port``; ``port=None``
    accepts any port, for an app served by someone else's server), extra ``Host`` names
    (``allowed_hosts``: ``NAME`` for any port, ``NAME:PORT`` for one) and origins
    (``allow_origins``: ``https://NAME[:PORT]``) it answers, its token, and its limits."""

    bind: str = "127.0.0.1"
    port: int | None = None
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        for name in self.allowed_hosts:
            if _split_host(name.lower()) is None:
                raise ValueError(f"--allowed-host {name!r} is not a host name or NAME:PORT")
        for origin in self.allow_origins:
            if _origin_key(origin) is None:
                raise ValueError(f"--allow-origin {origin!r} is not an origin such as "
                                 f"https://example.org or http://example.org:8080")

    @cached_property
    def _extra_hosts(self) -> list[tuple[str, int | None]]:
        return [_split_host(name.lower()) for name in self.allowed_hosts]  # type: ignore[misc]

    @cached_property
    def _extra_origins(self) -> set[tuple[str, str, int] | None]:
        return {_origin_key(origin) for origin in self.allow_origins}

    def authorized(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the token (always, without one);
        compared in constant time."""
        if self.token is None:
            return True
        # header values are bytes read as latin-1: back to those bytes, the token's UTF-8
        given = (authorization or "").encode("latin-1", "replace")
        return hmac.compare_digest(given, f"Bearer {self.token}".encode())

    def host_allowed(self, name: str, port: int) -> bool:
        """Whether a request for ``name:port`` (a Host header, or an Origin's) is for us."""
        for extra_name, extra_port in self._extra_hosts:
            if name == extra_name and extra_port in (None, port):
                return True
        if self.port is not None and port != self.port:
            return False
        if name in LOOPBACK_NAMES or name == _bracketed(self.bind.lower()):
            return True
        # Bound to every interface, the server is also reached by this machine's names and by
        # any address literal: no page can rebind a literal, so accepting one is safe.
        return self.bind in WILDCARDS and (_is_ip_literal(name) or name in _machine_names())


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def _machine_names() -> frozenset[str]:
    return frozenset({socket.gethostname().lower(), socket.getfqdn().lower()})


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``("name", port)`` of ``name[:port]`` or ``[v6][:port]``; None when malformed."""
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name += "]"
        if not _is_ip_literal(name):
            return None
    else:
        name, _, rest = value.partition(":")
        rest = ":" + rest if rest else ""
        if not name or not re.fullmatch(r"[a-z0-9._-]+", name):
            return None
    if not rest:
        return name, None
    if not re.fullmatch(r":[0-9]{1,5}", rest):
        return None
    return name, int(rest[1:])


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, name, port)`` of an origin; None when it is none (``null``, a path, ...)."""
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or parts.path not in ("", "/") or parts.query \
            or parts.username or parts.password:
        return None
    found = _split_host(parts.netloc)
    if found is None:
        return None
    return parts.scheme, found[0], found[1] or DEFAULT_PORTS[parts.scheme]


def is_json_type(content_type: str) -> bool:
    """Whether a Content-Type is ``application/json``, with at most a UTF-8 charset."""
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    if media != "application/json":
        return False
    return all(p.replace(" ", "") in ("charset=utf-8", 'charset="utf-8"') for p in params if p)


# -- JSON bounds, checked on the raw bytes before any parser builds objects -----------------
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_STEPS = bytes.maketrans(b"[{]}", bytes([1, 1, 255, 255]))  # +1 / -1 as signed bytes
_WINDOW = 1 << 20  # bytes split at a time: bounds the pieces a split makes


def json_bounds_error(body: bytes, limits: Limits) -> tuple[int, str] | None:
    """``(status, message)`` when the JSON text ``body`` holds more values or deeper nesting
    than ``limits`` allow; None when it fits (or is not JSON: its parser says why).

    Works at C speed on the bytes, without building the document: the text of strings is set
    aside (their escaped quotes and backslashes first), the rest counted."""
    from itertools import accumulate
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    inside, commas, opens, brackets = False, 0, 0, bytearray()
    for start in range(0, len(text), _WINDOW):
        parts = text[start:start + _WINDOW].split(b'"')
        structure = b"".join(parts[inside::2])  # the pieces between strings
        if len(parts) % 2 == 0:  # an odd number of quotes: a string goes on past the window
            inside = not inside
        commas += structure.count(b",")
        opens += structure.count(b"[") + structure.count(b"{")
        brackets += structure.translate(None, _NOT_BRACKETS)
        # each array item and object member follows an opening bracket or a comma (an empty
        # container counts one too many: a bound, not a count)
        if 1 + commas + opens > limits.max_json_values:
            return 413, (f"the JSON body holds more than {limits.max_json_values} values, the "
                         f"most one request takes: send smaller batches")
    steps = memoryview(bytes(brackets).translate(_STEPS)).cast("b")
    if max(accumulate(steps), default=0) > limits.max_json_depth:
        return 422, f"the JSON body is nested deeper than {limits.max_json_depth} levels"
    return None


# -- the middleware ------------------------------------------------------------------------
class Refused(Exception):
    """A request the guard answers itself."""

    def __init__(self, status: int, detail: str, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, list(headers)


class RequestGuard:
    """ASGI middleware applying a :class:`Policy` to every HTTP request (see the module)."""

    def __init__(self, app: ASGIApp, policy: Policy | None = None) -> None:
        self.app, self.policy = app, policy or Policy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        try:
            self._check_headers(scope, headers)
            if scope["type"] == "http":
                replay = await self._read_body(headers, receive)
                if replay is None:  # the client left before sending its body: nobody to answer
                    return
                receive = replay
        except Refused as refused:
            if scope["type"] == "http":
                await _answer(send, refused)
            else:  # a websocket is refused by closing it before accepting
                await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

    def _check_headers(self, scope: Scope, headers: dict[str, str]) -> None:
        policy = self.policy
        host = _split_host(headers.get("host", "").lower())
        if host is None:
            raise Refused(400, "the request has no valid Host header")
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        if not policy.host_allowed(host[0], host[1] or DEFAULT_PORTS[scheme]):
            raise Refused(421, f"this server does not answer for host {headers['host'][:200]!r}; "
                               f"start it with --allowed-host NAME to serve that name")
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin):
            raise Refused(403, f"requests from origin {origin[:200]!r} are refused; start the "
                               f"server with --allow-origin ORIGIN to accept them")
        if scope.get("path") not in OPEN_PATHS and not policy.authorized(
                headers.get("authorization")):
            raise Refused(401, "a valid 'Authorization: Bearer <token>' header is needed",
                          [("www-authenticate", "Bearer")])
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS \
                and not is_json_type(headers.get("content-type", "")):
            raise Refused(415, f"a {scope['method']} request must be 'Content-Type: "
                               f"application/json'; got {headers.get('content-type')!r}")

    def _origin_allowed(self, origin: str) -> bool:
        key = _origin_key(origin)
        if key is None:
            return False
        return key in self.policy._extra_origins or self.policy.host_allowed(key[1], key[2])

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> Receive | None:
        """A ``receive`` replaying the whole body, read here, counted as it arrives and
        checked; None if the client disconnected."""
        limits = self.policy.limits
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit()
                                     or int(declared) > limits.max_body_bytes):
            raise _too_large(limits)
        chunks, size = [], 0
        deadline = time.monotonic() + limits.body_total_s
        while True:
            wait = min(limits.body_idle_s, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0))
            except asyncio.TimeoutError:
                raise Refused(408, f"the request body did not arrive in time (at most "
                                   f"{limits.body_idle_s:g} s between pieces, "
                                   f"{limits.body_total_s:g} s in all)",
                              [("connection", "close")]) from None
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limits.max_body_bytes:
                raise _too_large(limits)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        if body and is_json_type(headers.get("content-type", "")):
            # about 15 ms a megabyte: a big body is scanned off the event loop
            error = json_bounds_error(body, limits) if len(body) < _WINDOW \
                else await asyncio.to_thread(json_bounds_error, body, limits)
            if error is not None:
                raise Refused(*error)
        return _replay(body, receive)


def _too_large(limits: Limits) -> Refused:
    return Refused(413, f"a request body is at most {limits.max_body_bytes} bytes",
                   [("connection", "close")])


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (a repeated Host or Origin is refused by
    making it unparseable)."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in found and name in ("host", "origin", "authorization", "content-type"):
            value = "\x00repeated"
        found[name] = value
    return found


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already, then what the client sends next
    (its disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()
    return replay


async def _answer(send: Send, refused: Refused) -> None:
    body = json.dumps({"detail": refused.detail}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode("latin-1")) for k, v in refused.headers]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
