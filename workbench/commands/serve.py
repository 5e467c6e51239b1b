"""`workbench serve`: the search API, figure bytes, articles and shard streaming over HTTP, and the search page."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from workbench.commands._argtypes import positive_int
from workbench.errors import UserError
from workbench.extras import require
from workbench.serve.config import ServeConfig
from workbench.workspace import Workspace

NAME = "serve"
HELP = "Serve search (POST /search), figures, articles and shards (HTTP Range) over HTTP, with a search page."
TOKEN_ENV = "WORKBENCH_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Binds 127.0.0.1 by default; off loopback a bearer token is required (--token or WORKBENCH_TOKEN) and the "
        "server refuses to start without one. Routes: POST /search, GET /figures/{key}[.json], /articles/{pmcid}, "
        "/shards/{path}, /subsets/{name}/{path}, /healthz, /metrics, /docs (OpenAPI), / (search page). "
        "Needs an index: `workbench index --workspace WS --embeddings NAME`. Exit 2: bad input."
    )
    parser.add_argument("--workspace", required=True, type=Path, help="workspace folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    parser.add_argument("--token", help=f"bearer token clients must send (default: ${TOKEN_ENV})")
    parser.add_argument("--embeddings", metavar="NAME", help="indexed embedding set (default: the only index)")
    parser.add_argument("--model", metavar="SPEC", help="model for query encoding (default: the embeddings' model)")
    parser.add_argument("--max-upload-mb", type=positive_int, default=8, help="largest request body (default 8 MB)")
    parser.add_argument("--timeout", type=positive_int, default=30, help="request time limit in s (default 30)")
    parser.add_argument("--concurrency", type=positive_int, default=8, help="requests handled at once (default 8)")


def default_embeddings(workspace: Workspace) -> str:
    names = sorted(p.parent.name for p in (workspace.root / "indexes").glob("*/index.json"))
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise UserError(f"give --embeddings NAME: indexes under {workspace.root / 'indexes'}: {found}")
    return names[0]


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.at(args.workspace)
    if not workspace.root.is_dir():
        raise UserError(f"no workspace at {workspace.root}")
    config = ServeConfig(
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        max_upload_bytes=args.max_upload_mb << 20,
        request_timeout_s=float(args.timeout),
        max_concurrency=args.concurrency,
        model_spec=args.model,
    )
    uvicorn = require("uvicorn", "serve", "workbench serve")
    require("fastapi", "serve", "workbench serve")
    from workbench.search.query import SearchEngine
    from workbench.serve.app import create_app

    engine = SearchEngine.open(workspace, args.embeddings or default_embeddings(workspace), config.model_spec)
    engine.embedder  # load the model now, not on the first query  # noqa: B018
    app = create_app(engine, config)
    print(f"serving {workspace.root} on http://{config.host}:{config.port} ({engine.index.rows:,} indexed figures)")
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        engine.close()
    return 0
