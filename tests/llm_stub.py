"""A local stand-in for an OpenAI-compatible chat endpoint on 127.0.0.1: it records every request and answers
deterministically. Multiple-choice prompts get the option named in the first source (or "A" without sources);
other prompts get an answer citing sources [1], [2] and a number no source has, [99]."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "Light microscopy shows the cells [1]. The trend is plotted in [2], and [99] does not exist."


def _text(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


def reply_for(messages: list[dict[str, Any]]) -> str:
    user = _text(messages[-1])
    if "Options:" not in user:
        return ANSWER
    options = dict(re.findall(r"^([A-J])\. (.+)$", user, re.MULTILINE))
    first = re.search(r"^\[1\] (\S+)", user, re.MULTILINE)
    for letter, text in options.items():
        if first and text.strip() == first.group(1):
            return json.dumps({"answer_choice": letter})
    return json.dumps({"answer_choice": "A"})


@dataclass
class ChatStub:
    api_key: str = "stub-key"
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> ChatStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    return self._send(401, {"error": {"message": "bad key"}})
                if self.path != "/v1/chat/completions" or not body.get("model") or not body.get("messages"):
                    return self._send(400, {"error": {"message": "not a chat completion request"}})
                text = reply_for(body["messages"])
                self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
