"""The ASGI layer every request passes first: token, upload size, bounded concurrency, time limit, metrics.

Errors are JSON `{"error": message, "status": code}`: 401 without the token, 413 for a body over the limit, 503 when
the server stays busy past the queue timeout, 504 past the request time limit. Streaming routes (/shards, /subsets)
are not cut by the time limit once their response has started.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from workbench.serve.config import ServeConfig
from workbench.serve.metrics import Metrics

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC = ("/", "/healthz", "/view/", "/static/")  # pages and probes that carry no data
STREAMING = ("/shards/", "/subsets/")
ROUTE_PREFIXES = ("/search", "/figures", "/articles", "/shards", "/subsets", "/healthz", "/metrics", "/view", "/docs")


def route_label(path: str) -> str:
    """A bounded label for metrics: the route prefix, `.json` figure metadata apart."""
    if path == "/":
        return "/"
    for prefix in ROUTE_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix + ("/{key}.json" if prefix == "/figures" and path.endswith(".json") else "")
    return "/openapi.json" if path == "/openapi.json" else "other"


async def send_json_error(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app: ASGIApp, config: ServeConfig, metrics: Metrics) -> None:
        self.app, self.config, self.metrics = app, config, metrics
        self.slots = asyncio.Semaphore(config.max_concurrency)

    def authorised(self, scope: Scope) -> bool:
        token = self.config.token
        if not token:
            return True
        path = scope["path"]
        if path == "/" or any(path.startswith(prefix) for prefix in PUBLIC[1:]):
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        if given.lower().startswith("bearer "):
            given = given[7:].strip()
        else:
            given = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, counted_send)
        finally:
            ms = (time.perf_counter() - started) * 1000
            self.metrics.request(scope["method"], route_label(scope["path"]), status[0], ms)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.authorised(scope):
            await send_json_error(send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")])
            return
        replay = await self._read_body(scope, receive, send)
        if replay is None:
            return
        try:
            await asyncio.wait_for(self.slots.acquire(), self.config.queue_timeout_s)
        except TimeoutError:
            await send_json_error(send, 503, f"busy: {self.config.max_concurrency} requests in flight, try again")
            return
        self.metrics.in_flight += 1
        response_started = [False]

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_started[0] = True
            await send(message)

        try:
            streaming = scope["path"].startswith(STREAMING)
            call = self.app(scope, replay, tracked_send)
            if streaming:
                await call
            else:
                await asyncio.wait_for(call, self.config.request_timeout_s)
        except TimeoutError:
            if not response_started[0]:
                await send_json_error(send, 504, f"the request took longer than {self.config.request_timeout_s:g} s")
        finally:
            self.metrics.in_flight -= 1
            self.slots.release()

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Read a request body up to the upload limit (413 beyond it); return a receive that replays it."""
        limit = self.config.max_upload_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = f"the request body is larger than the upload limit of {limit:,} bytes"
        if length is not None and length.isdigit() and int(length) > limit:
            await send_json_error(send, 413, too_large)
            return None
        if scope["method"] in ("GET", "HEAD"):
            return receive
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await send_json_error(send, 413, too_large)
                return None
            if not message.get("more_body"):
                break
        body, sent = b"".join(chunks), [False]

        async def replay() -> Message:
            if sent[0]:
                return await receive()
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay
