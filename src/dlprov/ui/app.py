"""The web UI's FastAPI app: every page (HTML, Jinja2 with autoescape) and its JSON twin under
``/api`` (in the OpenAPI at ``/openapi.json``). Only GET requests: nothing here writes.

:func:`create_ui` is the app of ``dlprov ui`` (behind :class:`dlprov.server.guards.
RequestGuard`, like ``dlprov serve``); :func:`mount_ui` puts the same pages under ``/ui`` of
the server's app. A browser holds the token in a cookie set from a ``?token=`` link
(:class:`TokenCookie`): the cookie is sent back only on the UI's own GET requests.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask

from dlprov.errors import DlprovError, NotFound, StoreUnavailable
from dlprov.server.guards import Limits, Policy, RequestGuard
from dlprov.store.store import Store, as_store
from dlprov.ui import views
from dlprov.ui.cookie import TokenCookie

HERE = Path(__file__).parent
VENDOR = {"uplot": "uplot-1.6.32", "cytoscape": "cytoscape-3.35.0",
          "dagre": "cytoscape-dagre-4.0.1", "htmx": "htmx-2.0.11"}
SECURITY_HEADERS = {
    # no inline script runs, whatever a stored value holds; styles inline for the libraries
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _status(exc: DlprovError) -> int:
    return 404 if isinstance(exc, NotFound) else 503 if isinstance(exc, StoreUnavailable) \
        else 400


def ui_app(store: Store | str | None = None) -> FastAPI:
    """The pages and JSON endpoints over ``store``, with no guard of their own (see
    :func:`create_ui` and :func:`mount_ui`)."""
    store = as_store(store)
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html
    app = FastAPI(title="dlprov ui", summary="Runs, models and lineage in a browser",
                  docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(DlprovError)
    async def failed(request: Request, exc: DlprovError) -> Response:
        if request.url.path.startswith(f"{request.scope.get('root_path', '')}/api"):
            return JSONResponse({"detail": str(exc), "error": type(exc).__name__},
                                status_code=_status(exc))
        return page(request, "error.html", {"error": str(exc), "kind": type(exc).__name__},
                    status=_status(exc))

    def page(request: Request, template: str, data: dict[str, Any], *,
             status: int = 200) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        return templates.TemplateResponse(
            request, template, {"data": data, "json": _json_ready(data), "base": base,
                                "vendor": VENDOR,
                                "query": dict(request.query_params), "store": store.safe_url},
            status_code=status)

    def answer(value: Any) -> JSONResponse:
        from dlprov.server.app import _answer
        return _answer(value)

    # -- runs ---------------------------------------------------------------------------
    def runs_data(where: list[str], sort: str | None, columns: list[str], page_: int,
                  size: int, agg: str) -> dict[str, Any]:
        return views.runs(store, where=where, sort=sort, columns=columns, page=page_,
                          size=size, aggregate=agg)

    @app.get("/", response_class=HTMLResponse, summary="Runs page")
    def runs_page(request: Request, where: list[str] = Query([], max_length=20),
                  sort: str | None = Query(None, max_length=200),
                  columns: list[str] = Query([], max_length=300),
                  page_: int = Query(1, alias="page", ge=1, le=1_000_000),
                  size: int = Query(50, ge=1, le=500), agg: str = Query("last", max_length=8)):
        return page(request, "runs.html", runs_data(where, sort, columns, page_, size, agg))

    @app.get("/api/runs", summary="Runs: filtered, sorted, paginated")
    def runs_json(where: list[str] = Query([], max_length=20),
                  sort: str | None = Query(None, max_length=200),
                  columns: list[str] = Query([], max_length=300),
                  page_: int = Query(1, alias="page", ge=1, le=1_000_000),
                  size: int = Query(50, ge=1, le=500), agg: str = Query("last", max_length=8)):
        return answer(runs_data(where, sort, columns, page_, size, agg))

    # -- one run ------------------------------------------------------------------------
    @app.get("/runs/{run}", response_class=HTMLResponse, summary="Run page")
    def run_page(request: Request, run: str):
        return page(request, "run.html", views.run(store, run))

    @app.get("/api/runs/{run}", summary="Run: tasks, parameters, environment, models")
    def run_json(run: str):
        return answer(views.run(store, run))

    @app.get("/api/runs/{run}/series", summary="A run's curves, after an element id")
    def series_json(run: str, set: str = Query("otrain", max_length=64),
                    after: int = Query(0, ge=0), points: int = Query(2000, ge=4, le=20_000)):
        from dlprov.ui.run import series
        return answer(series(store, run, set, after=after, max_points=points))

    @app.get("/api/runs/{run}/lineage", summary="A run's lineage graph")
    def run_lineage_json(run: str):
        return answer(views.run_lineage(store, run))

    @app.get("/runs/{run}/prov.{format}", summary="A run's PROV document")
    def run_prov(run: str, format: str):
        content, media = views.run_prov(store, run, format)
        return Response(content, media_type=media, headers=_attachment(f"{run}.{format}"))

    # -- compare ------------------------------------------------------------------------
    @app.get("/compare", response_class=HTMLResponse, summary="Compare page")
    def compare_page(request: Request, runs: list[str] = Query([], max_length=20),
                     models: list[str] = Query([], max_length=20)):
        return page(request, "compare.html",
                    views.compare(store, ",".join(runs), ",".join(models)))

    @app.get("/api/compare", summary="Runs or models side by side")
    def compare_json(runs: list[str] = Query([], max_length=20),
                     models: list[str] = Query([], max_length=20)):
        return answer(views.compare(store, ",".join(runs), ",".join(models)))

    # -- models -------------------------------------------------------------------------
    @app.get("/models", response_class=HTMLResponse, summary="Models ranked (Q3, Q4)")
    def models_page(request: Request, dataflow: str | None = Query(None, max_length=64),
                    metric: str | None = Query(None, max_length=64)):
        return page(request, "models.html", views.models(store, dataflow, metric))

    @app.get("/api/models", summary="Models ranked (Q3, Q4)")
    def models_json(dataflow: str | None = Query(None, max_length=64),
                    metric: str | None = Query(None, max_length=64)):
        return answer(views.models(store, dataflow, metric))

    @app.get("/api/models/{model:path}", summary="Model card: Q7-Q12, tests, lineage")
    def model_json(model: str):
        return answer(views.model(store, model))

    @app.get("/download/package", summary="A model's package (dlprov package)")
    def package(model: str = Query(..., max_length=4096)):
        from dlprov.ui.models import package_file
        path = package_file(store, model)
        return FileResponse(path, media_type="application/zip",
                            filename=f"{_safe_name(model)}.zip",
                            background=BackgroundTask(path.unlink, missing_ok=True))

    @app.get("/download/prov", summary="A model's PROV document (json, provn, xml, ttl, svg)")
    def prov(model: str = Query(..., max_length=4096), format: str = Query("json",
                                                                          max_length=8)):
        from dlprov.ui.models import PROV_FORMATS, prov_bytes
        media = PROV_FORMATS.get(format, "image/svg+xml")
        return Response(prov_bytes(store, model, format), media_type=media,
                        headers=_attachment(f"{_safe_name(model)}.{format}"))

    @app.get("/models/{model:path}", response_class=HTMLResponse, summary="Model card")
    def model_page(request: Request, model: str):
        return page(request, "model.html", views.model(store, model))

    # -- dataflows and the query console ------------------------------------------------
    @app.get("/dataflows/{tag}", response_class=HTMLResponse, summary="Dataflow spec")
    def dataflow_page(request: Request, tag: str):
        return page(request, "dataflow.html", views.dataflow(store, tag))

    @app.get("/api/dataflows/{tag}", summary="Dataflow spec and versions")
    def dataflow_json(tag: str):
        return answer(views.dataflow(store, tag))

    @app.get("/query", response_class=HTMLResponse, summary="SQL and Cypher console")
    def query_page(request: Request, q: str = Query("", max_length=20_000),
                   lang: str = Query("sql", pattern="^(sql|cypher)$"),
                   dataflow: str | None = Query(None, max_length=64),
                   preset: str | None = Query(None, max_length=8),
                   model: str | None = Query(None, max_length=4096)):
        return page(request, "query.html", views.query(store, q, lang, dataflow, preset, model,
                                                       catch=True))

    @app.get("/api/query", summary="Run a read-only SQL or Cypher query")
    def query_json(q: str = Query("", max_length=20_000),
                   lang: str = Query("sql", pattern="^(sql|cypher)$"),
                   dataflow: str | None = Query(None, max_length=64),
                   preset: str | None = Query(None, max_length=8),
                   model: str | None = Query(None, max_length=4096), format: str = "json"):
        found = views.query(store, q, lang, dataflow, preset, model)
        if format != "csv":
            return answer(found)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(found["columns"])
        writer.writerows(found["rows"])
        return Response(out.getvalue(), media_type="text/csv",
                        headers=_attachment("query.csv"))

    return app


def _json_ready(value: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    from dlprov.server.app import _plain
    return _plain(jsonable_encoder(value))


def _safe_name(text: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text).name)[:80] or "model"


def _attachment(name: str) -> dict[str, str]:
    return {"content-disposition": f'attachment; filename="{_safe_name(name)}"'}


def create_ui(store: Store | str | None = None, token: str | None = None, *,
              bind: str = "127.0.0.1", port: int | None = None,
              allowed_hosts: Iterable[str] = (), allow_origins: Iterable[str] = ()) -> FastAPI:
    """The app of ``dlprov ui``: :func:`ui_app` behind the server's guard (Host, Origin,
    token) and :class:`TokenCookie`."""
    policy = Policy(bind=bind, port=port, token=token, allowed_hosts=tuple(allowed_hosts),
                    allow_origins=tuple(allow_origins), limits=Limits(max_body_bytes=0))
    app = ui_app(store)
    app.add_middleware(RequestGuard, policy=policy)
    app.add_middleware(TokenCookie, policy=policy)  # outermost: turns the cookie into a header
    return app


def mount_ui(app: FastAPI, store: Store, policy: Policy, prefix: str = "/ui") -> None:
    """Serve the UI under ``prefix`` of the server's ``app`` (whose guard applies); left out,
    with a log line, where Jinja2 is not installed (``pip install dlprov[ui]``)."""
    import importlib.util
    import logging
    if importlib.util.find_spec("jinja2") is None:
        logging.getLogger("dlprov.server").warning(
            "the web UI is not served under %s: install jinja2 (pip install 'dlprov[ui]')",
            prefix)
        return
    app.mount(prefix, ui_app(store))
    app.add_middleware(TokenCookie, policy=policy, prefix=prefix)


def serve_ui(store: Store | str | None = None, host: str = "127.0.0.1", port: int = 22100,
             token: str | None = None, *, allowed_hosts: Iterable[str] = (),
             allow_origins: Iterable[str] = (), announce=print) -> None:
    """Run the UI until interrupted (``dlprov ui``); prints its URL first."""
    import uvicorn

    from dlprov.server.app import check_bind
    from dlprov.server.listener import config
    check_bind(host, token)
    try:
        app = create_ui(store, token, bind=host, port=port, allowed_hosts=allowed_hosts,
                        allow_origins=allow_origins)
    except ValueError as exc:  # a malformed --allowed-host or --allow-origin
        raise DlprovError(str(exc)) from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    link = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    announce(f"dlprov ui: serving {as_store(store).safe_url} at {link}")
    uvicorn.Server(config(app, host, port, log_level="warning")).run()
