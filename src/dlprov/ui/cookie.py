"""The token of a browser: a ``?token=`` link sets a cookie, and the cookie stands for the
``Authorization`` header on the UI's GET requests. It sits outside
:class:`dlprov.server.guards.RequestGuard`, which still checks every request.

The cookie is ``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site's page
sends it), and it is only honoured on reads: a write to the server's API still needs the
header.
"""
from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

from dlprov.server.guards import Policy

COOKIE = "dlprov_token"
Scope = dict[str, Any]
ASGIApp = Callable[..., Awaitable[None]]


class TokenCookie:
    """ASGI middleware: see the module. ``prefix``: the paths it applies to (the UI's)."""

    def __init__(self, app: ASGIApp, policy: Policy, prefix: str = "") -> None:
        self.app, self.policy, self.prefix = app, policy, prefix

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or self.policy.token is None \
                or scope["method"] not in ("GET", "HEAD") \
                or not _under(scope.get("path", ""), self.prefix):
            await self.app(scope, receive, send)
            return
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        given = next((v for k, v in pairs if k == "token"), None)
        if given is not None and self.policy.authorized(f"Bearer {given}"):
            await _redirect_with_cookie(scope, send, [(k, v) for k, v in pairs
                                                      if k != "token"], given, self.prefix)
            return
        headers = list(scope.get("headers", ()))
        if not any(name.lower() == b"authorization" for name, _ in headers):
            token = _cookie(headers)
            if token is not None:
                headers.append((b"authorization", f"Bearer {token}".encode("latin-1",
                                                                           "replace")))
                scope = dict(scope, headers=headers)
        await self.app(scope, receive, send)


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header: as if none
                continue
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


async def _redirect_with_cookie(scope: Scope, send, pairs: list[tuple[str, str]], token: str,
                                prefix: str) -> None:
    """303 to the same page without the token in its address, setting the cookie."""
    location = scope.get("root_path", "") + scope["path"] + (f"?{urlencode(pairs)}"
                                                            if pairs else "")
    jar: SimpleCookie = SimpleCookie()
    jar[COOKIE] = token
    jar[COOKIE].update({"httponly": True, "samesite": "Strict", "path": prefix or "/"})
    await send({"type": "http.response.start", "status": 303, "headers": [
        (b"location", location.encode("latin-1", "replace")),
        (b"set-cookie", jar.output(header="").strip().encode("latin-1", "replace")),
        (b"content-length", b"0"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b""})
