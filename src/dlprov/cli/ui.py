"""``dlprov ui``: the web UI (twin of :func:`dlprov.ui.app.serve_ui`)."""
from __future__ import annotations

import click


@click.command()
@click.option("--store", "-s", "store", metavar="URL", default=None,
              help="Store to show: an SQLite path, a postgresql:// URL or a dlprov server's "
                   "http:// URL (default: dlprov's --store, $DLPROV_STORE or ./dlprov.db).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token.")
@click.option("--port", default=22100, show_default=True, type=click.IntRange(1, 65535))
@click.option("--token", envvar="DLPROV_TOKEN", default=None,
              help="Require this token: 'Authorization: Bearer TOKEN', or open the printed "
                   "link once (it sets a cookie) ($DLPROV_TOKEN).")
@click.option("--allowed-host", "allowed_hosts", metavar="NAME[:PORT]", multiple=True,
              help="Also answer requests for this Host (a DNS name or a proxy's); repeatable.")
@click.pass_context
def ui(ctx: click.Context, store: str | None, host: str, port: int, token: str | None,
       allowed_hosts: tuple[str, ...]) -> None:
    """Browse runs, models and lineage in a web browser (read-only; prints the URL).

    Pages: runs (/), a run (/runs/TAG), compare (/compare?runs=A,B or ?models=M1,M2), a model
    card (/models/MODEL), models ranked (/models), a dataflow (/dataflows/TAG) and a SQL and
    Cypher console (/query); each has a JSON twin under /api (see docs/ui.md)."""
    from dlprov.ui.app import serve_ui
    serve_ui(store or ctx.obj, host=host, port=port, token=token,
             allowed_hosts=allowed_hosts, announce=click.echo)
