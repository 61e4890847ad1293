"""The FastAPI application of ``dlprov serve`` (OpenAPI at ``/openapi.json``).

Every request passes :class:`dlprov.server.guards.RequestGuard` first (Host, Origin, token,
JSON-only writes, bounded bodies): see ``docs/server.md``, "Security".
"""
from __future__ import annotations

import logging
import math
from contextlib import asynccontextmanager
from typing import Annotated, Any, Iterable

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from dlprov.errors import DlprovError, NotFound, StoreUnavailable
from dlprov.server.dfanalyzer import DataflowIn, DfAnalyzer, TaskIn, original_json
from dlprov.server.guards import Limits, Policy, RequestGuard
from dlprov.server.remote import (
    BatchWriter,
    ParametersRejected,
    decode_batches,
    question_params,
    set_rows,
)
from dlprov.store.store import Store, as_store

log = logging.getLogger("dlprov.server")


class AppliedIn(BaseModel):
    ids: list[Annotated[str, StringConstraints(max_length=100)]] = Field(max_length=100_000)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _plain(value: Any) -> Any:
    """JSON-ready, with NaN and infinities as null (standard JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _answer(value: Any) -> JSONResponse:
    return JSONResponse(_plain(jsonable_encoder(value)))


def create_app(store: Store | str | None = None, token: str | None = None, *,
               bind: str = "127.0.0.1", port: int | None = None,
               allowed_hosts: Iterable[str] = (), allow_origins: Iterable[str] = (),
               limits: Limits | None = None) -> FastAPI:
    """The server's app over ``store``.

    With ``token``, every request but ``GET /health`` must carry ``Authorization: Bearer
    <token>``. Requests must name the server in ``Host``: localhost, 127.0.0.1, [::1] or
    ``bind``, on ``port`` (any port when None), or one of ``allowed_hosts`` (``NAME`` or
    ``NAME:PORT``); a browser's ``Origin`` must be one of those or of ``allow_origins``.
    ``limits`` bound request bodies (see :class:`dlprov.server.guards.Limits`)."""
    policy = Policy(bind=bind, port=port, token=token, allowed_hosts=tuple(allowed_hosts),
                    allow_origins=tuple(allow_origins), limits=limits or Limits())
    store = as_store(store)
    if store.remote:
        raise StoreUnavailable(f"a server cannot serve another server ({store.url}): give it "
                               f"an SQLite path or a postgresql:// URL")
    protocol, batches = DfAnalyzer(store), BatchWriter(store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        protocol.close()

    app = FastAPI(title="dlprov", summary="Provenance of deep-learning workflows",
                  lifespan=lifespan)
    app.state.store, app.state.dfanalyzer, app.state.policy = store, protocol, policy
    app.add_middleware(RequestGuard, policy=policy)

    @app.exception_handler(DlprovError)
    async def dlprov_error(_request: Request, exc: DlprovError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 503 \
            if isinstance(exc, StoreUnavailable) else 400
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=status)

    @app.exception_handler(ParametersRejected)
    async def bad_parameters(_request: Request, exc: ParametersRejected) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return JSONResponse({"detail": "invalid payload", "errors": _plain(errors)},
                            status_code=422)

    @app.exception_handler(ValueError)
    async def refused(_request: Request, exc: ValueError) -> JSONResponse:
        # dfa raises plain ValueError for a reused or ended exec tag, a wrong set type, ...
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=400)

    @app.exception_handler(RuntimeError)
    async def out_of_order(_request: Request, exc: RuntimeError) -> JSONResponse:
        # dfa raises RuntimeError for a task that depends on one not begun
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=409)

    @app.get("/health")
    def health(request: Request) -> dict:
        # open to all, as a liveness probe; where the store is, only to holders of the token
        if policy.authorized(request.headers.get("authorization")):
            return {"status": "ok", "store": store.safe_url}
        return {"status": "ok"}

    # -- the original DfAnalyzer protocol ------------------------------------------------------
    # The original client's default URL makes "//pde/...": both are served.
    @app.post("/pde/dataflow/json")
    @app.post("//pde/dataflow/json", include_in_schema=False)
    async def post_dataflow(request: Request) -> JSONResponse:
        body = await original_json(request, DataflowIn)
        await run_in_threadpool(protocol.dataflow, body)
        return _answer(body.model_dump(exclude_none=True))

    @app.post("/pde/task/json")
    @app.post("//pde/task/json", include_in_schema=False)
    async def post_task(request: Request) -> JSONResponse:
        body = await original_json(request, TaskIn)
        done = await run_in_threadpool(protocol.task, body)
        return _answer({**body.model_dump(by_alias=True, exclude_none=True), **done})

    # -- dlprov's own remote capture -----------------------------------------------------------
    @app.post("/v1/batch")
    async def post_batch(request: Request) -> JSONResponse:
        import json
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            return JSONResponse({"detail": f"the body is not JSON: {exc}"}, status_code=400)
        from starlette.concurrency import run_in_threadpool
        written = await run_in_threadpool(batches.write, decode_batches(body))
        return _answer({"written": written})

    @app.post("/v1/applied")
    def post_applied(body: AppliedIn) -> JSONResponse:
        return _answer({"applied": sorted(batches.applied(body.ids))})

    # -- reads -----------------------------------------------------------------------------
    @app.get("/v1/runs")
    def runs(dataflow: str | None = Query(None, max_length=64)) -> JSONResponse:
        # The rows of `dlprov runs` (tags, hyperparameters, metrics): a client filters them.
        from dlprov.query.runs import runs_rows
        return _answer(runs_rows(store, dataflow))

    @app.get("/v1/trace")
    def trace(name: str = Query(..., max_length=1000), runs: bool = False,
              dataflow: str | None = Query(None, max_length=64)) -> JSONResponse:
        # one side of `dlprov diff` / `dlprov reproduce`, read from this store
        from dlprov.compare.sources import trace_answer
        return _answer(trace_answer(store, name, runs, dataflow))

    @app.get("/v1/runs/{exec_tag}/tasks")
    def tasks(exec_tag: str) -> JSONResponse:
        from dlprov.query.catalogue import list_tasks
        return _answer(list_tasks(exec_tag, store))

    @app.get("/v1/dataflows/{df_tag}/spec")
    def spec(df_tag: str) -> JSONResponse:
        found = store.load_spec(df_tag)
        if found is None:
            raise NotFound(f"no dataflow {df_tag!r} in the store")
        return _answer(found.to_dict())

    @app.get("/v1/sets/{df_tag}/{set_tag}")
    def sets(df_tag: str, set_tag: str, limit: int = Query(100, ge=1, le=10_000),
             offset: int = Query(0, ge=0)) -> JSONResponse:
        return _answer(set_rows(store, df_tag, set_tag, limit, offset))

    @app.get("/v1/query/{question}")
    def query(question: str, request: Request) -> JSONResponse:
        from dlprov.query.questions import ask
        result = ask(question, store=store,
                     **question_params(question, request.query_params.multi_items()))
        return _answer({"question": question.lower(), "columns": result.columns,
                        "rows": result.records()})

    # -- the web UI (dlprov ui) under /ui: the same guard, the same store ----------------
    from dlprov.ui.app import mount_ui
    mount_ui(app, store, policy)
    return app


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if host not in LOOPBACK and not token:
        raise DlprovError(f"binding {host} exposes the store beyond this machine: give --token "
                          f"(clients then send 'Authorization: Bearer <token>')")


def serve(store: Store | str | None = None, host: str = "127.0.0.1", port: int = 22000,
          token: str | None = None, *, allowed_hosts: Iterable[str] = (),
          allow_origins: Iterable[str] = ()) -> None:
    """Run the server until interrupted (``dlprov serve``); see :func:`create_app`."""
    import os

    import uvicorn

    from dlprov.server.listener import config
    check_bind(host, token)
    # The environment of a remote execution is the client's (its hardware JSON), not ours.
    os.environ.setdefault("DLPROV_CAPTURE_ENVIRONMENT", "0")
    try:
        app = create_app(store, token, bind=host, port=port, allowed_hosts=allowed_hosts,
                         allow_origins=allow_origins)
    except ValueError as exc:  # a malformed --allowed-host or --allow-origin
        raise DlprovError(str(exc)) from None
    uvicorn.Server(config(app, host, port, log_level="info")).run()
