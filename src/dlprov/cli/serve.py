"""``dlprov serve``: the HTTP server (twin of :func:`dlprov.server.app.serve`)."""
from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token.")
@click.option("--port", default=22000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--token", envvar="DLPROV_TOKEN", default=None,
              help="Require 'Authorization: Bearer TOKEN' on every request ($DLPROV_TOKEN).")
@click.option("--store", "-s", "store", metavar="URL", default=None,
              help="Store to serve (default: dlprov's --store, $DLPROV_STORE or ./dlprov.db).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, token: str | None,
          store: str | None) -> None:
    """Serve the store over HTTP: the DfAnalyzer protocol (/pde/...), remote capture
    (/v1/batch, for DLPROV_STORE=http://HOST:PORT) and reads (/v1/..., /openapi.json)."""
    from dlprov.server.app import serve as run_server
    run_server(store or ctx.obj, host=host, port=port, token=token)
