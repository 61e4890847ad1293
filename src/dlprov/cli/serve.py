"""``dlprov serve``: the HTTP server (twin of :func:`dlprov.server.app.serve`)."""
from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token.")
@click.option("--port", default=22000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--token", envvar="DLPROV_TOKEN", default=None,
              help="Require 'Authorization: Bearer TOKEN' on every request but GET /health "
                   "($DLPROV_TOKEN).")
@click.option("--store", "-s", "store", metavar="URL", default=None,
              help="Store to serve (default: dlprov's --store, $DLPROV_STORE or ./dlprov.db).")
@click.option("--allowed-host", "allowed_hosts", metavar="NAME[:PORT]", multiple=True,
              help="Also answer requests for this Host (a DNS name or a proxy's), besides "
                   "localhost, 127.0.0.1, [::1] and --host; repeatable.")
@click.option("--allow-origin", "allow_origins", metavar="ORIGIN", multiple=True,
              help="Also accept browser requests from this origin (https://NAME[:PORT]); "
                   "repeatable.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, token: str | None, store: str | None,
          allowed_hosts: tuple[str, ...], allow_origins: tuple[str, ...]) -> None:
    """Serve the store over HTTP: the DfAnalyzer protocol (/pde/...), remote capture
    (/v1/batch, for DLPROV_STORE=http://HOST:PORT) and reads (/v1/..., /openapi.json).

    Only requests naming this server in Host are answered, writes must be JSON, and browser
    pages of other origins are refused (see docs/server.md, "Security")."""
    from dlprov.server.app import serve as run_server
    run_server(store or ctx.obj, host=host, port=port, token=token,
               allowed_hosts=allowed_hosts, allow_origins=allow_origins)
