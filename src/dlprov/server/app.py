"""The FastAPI application of ``dlprov serve`` (OpenAPI at ``/openapi.json``)."""
from __future__ import annotations

import hmac
import logging
import math
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from dlprov.errors import DlprovError, NotFound, StoreUnavailable
from dlprov.server.dfanalyzer import DataflowIn, DfAnalyzer, TaskIn
from dlprov.server.remote import BatchWriter, decode_batches, set_rows
from dlprov.store.store import Store, as_store

log = logging.getLogger("dlprov.server")


class AppliedIn(BaseModel):
    ids: list[Annotated[str, StringConstraints(max_length=100)]] = Field(max_length=100_000)

MAX_BODY_BYTES = 64 << 20
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


def create_app(store: Store | str | None = None, token: str | None = None) -> FastAPI:
    """The server's app over ``store``; with ``token``, every request must carry
    ``Authorization: Bearer <token>``."""
    store = as_store(store)
    if store.remote:
        raise StoreUnavailable(f"a server cannot serve another server ({store.url}): give it "
                               f"an SQLite path or a postgresql:// URL")
    protocol, batches = DfAnalyzer(store), BatchWriter(store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        protocol.close()

    def authorize(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "a valid 'Authorization: Bearer <token>' header is needed",
                                headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="dlprov", summary="Provenance of deep-learning workflows",
                  lifespan=lifespan, dependencies=[Depends(authorize)])
    app.state.store, app.state.dfanalyzer = store, protocol

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"a request body is at most {MAX_BODY_BYTES} bytes"},
                                status_code=413)
        return await call_next(request)

    @app.exception_handler(DlprovError)
    async def dlprov_error(_request: Request, exc: DlprovError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 503 \
            if isinstance(exc, StoreUnavailable) else 400
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=status)

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
    def health() -> dict:
        return {"status": "ok", "store": store.safe_url}

    # -- the original DfAnalyzer protocol ------------------------------------------------------
    @app.post("/pde/dataflow/json")
    def post_dataflow(body: DataflowIn) -> JSONResponse:
        protocol.dataflow(body)
        return _answer(body.model_dump(exclude_none=True))

    @app.post("/pde/task/json")
    def post_task(body: TaskIn) -> JSONResponse:
        protocol.task(body)
        return _answer(body.model_dump(by_alias=True, exclude_none=True))

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
        from dlprov.query.catalogue import list_runs
        return _answer(list_runs(store, dataflow))

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
        params = dict(request.query_params)
        dataflow = params.pop("dataflow", None)
        for name in ("learning_rate", "batch_size"):
            if name in params:
                try:
                    params[name] = float(params[name])
                except ValueError:
                    raise HTTPException(400, f"{name} must be a number") from None
        result = ask(question, store=store, dataflow=dataflow, **params)
        return _answer({"question": question.lower(), "columns": result.columns,
                        "rows": result.records()})

    return app


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if host not in LOOPBACK and not token:
        raise DlprovError(f"binding {host} exposes the store beyond this machine: give --token "
                          f"(clients then send 'Authorization: Bearer <token>')")


def serve(store: Store | str | None = None, host: str = "127.0.0.1", port: int = 22000,
          token: str | None = None) -> None:
    """Run the server until interrupted (``dlprov serve``)."""
    import os

    import uvicorn
    check_bind(host, token)
    # The environment of a remote execution is the client's (its hardware JSON), not ours.
    os.environ.setdefault("DLPROV_CAPTURE_ENVIRONMENT", "0")
    uvicorn.run(create_app(store, token), host=host, port=port, log_level="info")
