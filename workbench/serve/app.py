"""The HTTP API (FastAPI): search, figure bytes and metadata, articles, shard and subset streaming, health, metrics.

POST /search               JSON {"text", "k", "filter", "rrf_k", "candidates", "lists"} or multipart with an
                           `image` file part (and optional text, k, filter parts) -> {"results", "timings_ms"}
GET  /figures/{key}        the JPEG bytes exactly as stored in the shard (read through their offsets)
GET  /figures/{key}.json   the figure's catalog row
GET  /articles/{pmcid}     the article's catalog row and its figure keys
GET  /shards/{path}        files under WS/shards/ (HTTP Range: 206), so webdataset can stream training data
GET  /subsets/{name}/{path} files of a subset, likewise
GET  /healthz, /metrics    liveness; Prometheus text with per-route latency and per-stage search timings
GET  /, /view/{key}        the search page and a figure page (workbench.serve.page)
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from workbench.catalog import FigureFilter, WhereRefused
from workbench.errors import InputNotFound, UserError
from workbench.search import sql
from workbench.search.query import LISTS, NotAnImage, SearchEngine, SearchRequest
from workbench.serve import page
from workbench.serve.config import ServeConfig
from workbench.serve.files import figure_bytes, served_file, subset_file
from workbench.serve.guard import Guard
from workbench.serve.metrics import Metrics

REQUEST_FIELDS = ("text", "k", "filter", "rrf_k", "candidates", "lists")
SEARCH_SCHEMA = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "k": {"type": "integer", "default": 10},
                        "filter": {"type": "object", "description": "FigureFilter fields"},
                        "rrf_k": {"type": "integer", "default": 60},
                        "candidates": {"type": "integer", "default": 100},
                        "lists": {"type": "array", "items": {"type": "string", "enum": list(LISTS)}},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "text": {"type": "string"},
                        "k": {"type": "integer"},
                        "filter": {"type": "string", "description": "FigureFilter fields as JSON"},
                        "lists": {"type": "string", "description": f"JSON array of list names: {', '.join(LISTS)}"},
                    },
                }
            },
        }
    }
}


class ShardResponse(FileResponse):
    """A file streamed in 1 MiB chunks (Starlette's default 64 KiB costs a third of the throughput)."""

    chunk_size = 1 << 20


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def parse_search(fields: dict[str, Any], image: bytes | None = None) -> SearchRequest:
    """A SearchRequest from JSON fields (multipart values arrive as strings); bad input is a UserError."""
    unknown = sorted(set(fields) - set(REQUEST_FIELDS))
    if unknown:
        raise UserError(f"unknown search field(s): {', '.join(unknown)} (known: {', '.join(REQUEST_FIELDS)})")
    selection = fields.get("filter") or {}
    if isinstance(selection, str):
        try:
            selection = json.loads(selection)
        except json.JSONDecodeError as error:
            raise UserError(f"filter is not JSON: {error}") from error
    if not isinstance(selection, dict):
        raise UserError("filter must be an object of FigureFilter fields")
    try:
        given = [name for name in ("k", "rrf_k", "candidates") if fields.get(name) not in (None, "")]
        numbers = {name: int(fields[name]) for name in given}
        lists = fields.get("lists") or ()
        lists = tuple(json.loads(lists) if isinstance(lists, str) else lists)
        return SearchRequest(
            text=str(fields.get("text") or ""),
            image=image,
            filter=FigureFilter.from_dict(selection),
            lists=lists,
            **numbers,
        )
    except (ValueError, TypeError) as error:
        if isinstance(error, UserError):
            raise
        raise UserError(f"bad search request: {error}") from error


def create_app(engine: SearchEngine, config: ServeConfig | None = None) -> Any:
    """The ASGI application: FastAPI routes wrapped in the Guard (auth, limits, metrics)."""
    config = config or ServeConfig()
    metrics = Metrics()
    api = FastAPI(
        title="BIOMEDICA Workbench search",
        version="1",
        summary="Search figures by text and image; stream figures, articles and training shards.",
    )
    workspace = engine.workspace

    @api.exception_handler(InputNotFound)
    async def not_found(_: Request, error: InputNotFound) -> JSONResponse:
        return _error(404, str(error))

    @api.exception_handler(NotAnImage)
    async def not_an_image(_: Request, error: NotAnImage) -> JSONResponse:
        return _error(415, str(error))

    @api.exception_handler(UserError)
    async def bad_input(_: Request, error: UserError) -> JSONResponse:
        return _error(400, str(error))

    @api.exception_handler(WhereRefused)
    async def bad_where(_: Request, error: WhereRefused) -> JSONResponse:
        return _error(400, str(error))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return _error(400, f"bad request: {error.errors()[0].get('msg', 'invalid input')}")

    @api.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "embeddings": engine.index.manifest["embeddings"], "indexed": engine.index.rows}

    @api.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @api.post("/search", openapi_extra=SEARCH_SCHEMA)
    async def search(request: Request) -> JSONResponse:
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("image")
            image = await upload.read() if upload is not None and not isinstance(upload, str) else None
            if upload is not None and not image:
                raise UserError("the image part is empty or not a file")
            fields = {name: value for name, value in form.items() if name != "image" and isinstance(value, str)}
            parsed = parse_search(fields, image)
        else:
            try:
                body = json.loads(await request.body() or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise UserError(f"the body is not JSON: {error}") from error
            if not isinstance(body, dict):
                raise UserError("the body must be a JSON object")
            parsed = parse_search(body)
        response = await run_in_threadpool(engine.search, parsed)
        metrics.stages(response.timings_ms)
        return JSONResponse(response.to_dict())

    def figure_row(key: str) -> dict[str, Any]:
        found = engine.figure(key)
        if found is None:
            raise InputNotFound(f"no figure with key {key!r}")
        return found

    @api.get("/figures/{key}.json")
    def figure_json(key: str) -> JSONResponse:
        row = figure_row(key)
        row["image_url"] = f"/figures/{key}"
        row["pmc_url"] = f"https://www.ncbi.nlm.nih.gov/pmc/articles/{row['pmcid']}/"
        return JSONResponse(json.loads(json.dumps(row, default=str)))

    @api.get("/figures/{key}", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    def figure(key: str) -> Response:
        row = figure_row(key)
        data = figure_bytes(workspace, row["shard"], row["jpg_offset"], row["jpg_size"])
        return Response(data, media_type="image/jpeg", headers={"cache-control": "public, max-age=86400"})

    @api.get("/articles/{pmcid}")
    def article(pmcid: str) -> JSONResponse:
        found = engine.rows(sql.ARTICLE_ROW, [pmcid])
        if not found:
            raise InputNotFound(f"no article {pmcid!r}")
        found = found[0] | {"figures": [row["key"] for row in engine.rows(sql.ARTICLE_FIGURES, [pmcid])]}
        return JSONResponse(json.loads(json.dumps(found, default=str)))

    @api.get("/shards/{path:path}")
    def shard(path: str) -> FileResponse:
        return ShardResponse(served_file(workspace.shards, path))

    @api.get("/subsets/{name}/{path:path}")
    def subset(name: str, path: str) -> FileResponse:
        return ShardResponse(subset_file(workspace, name, path))

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def search_page() -> HTMLResponse:
        return HTMLResponse(page.SEARCH_PAGE)

    @api.get("/view/{key}", response_class=HTMLResponse, include_in_schema=False)
    def figure_page(key: str) -> HTMLResponse:
        figure_row(key)
        return HTMLResponse(page.FIGURE_PAGE)

    return Guard(api, config, metrics)
