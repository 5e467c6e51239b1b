"""Any OpenAI-compatible chat endpoint (POST {base_url}/chat/completions), configured by flags or environment.

    WORKBENCH_LLM_BASE_URL   e.g. http://127.0.0.1:8000/v1 (vLLM, llama.cpp server, Ollama, a hosted API)
    WORKBENCH_LLM_MODEL      the model name the endpoint expects
    WORKBENCH_LLM_API_KEY    sent as a bearer token when set
    WORKBENCH_LLM_IMAGES     1: the model takes images (messages then carry them as data: URLs)
No hosted model is assumed: without a base URL, `ask` says how to configure one (or use --retrieve-only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import requests

from workbench.errors import UserError

ENV = {
    "base_url": "WORKBENCH_LLM_BASE_URL",
    "model": "WORKBENCH_LLM_MODEL",
    "api_key": "WORKBENCH_LLM_API_KEY",
    "images": "WORKBENCH_LLM_IMAGES",
}


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str | None = None
    images: bool = False
    timeout_s: float = 120.0
    max_tokens: int = 512
    temperature: float = 0.0

    @classmethod
    def resolve(
        cls, base_url: str | None = None, model: str | None = None, images: bool | None = None, **options: Any
    ) -> LLMConfig:
        """Flags first, then the environment; a missing base URL or model is a one-line UserError."""
        base_url = base_url or os.environ.get(ENV["base_url"], "")
        model = model or os.environ.get(ENV["model"], "")
        if not base_url:
            raise UserError(f"no chat endpoint: give --base-url or set {ENV['base_url']} (or use --retrieve-only)")
        if not model:
            raise UserError(f"no model name: give --llm-model or set {ENV['model']}")
        if images is None:
            images = os.environ.get(ENV["images"], "") in ("1", "true", "yes")
        return cls(base_url.rstrip("/"), model, os.environ.get(ENV["api_key"]) or None, images, **options)


def chat(config: LLMConfig, messages: list[dict[str, Any]]) -> str:
    """The assistant's reply text; an unreachable endpoint or an error status is a one-line UserError."""
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    body = {
        "model": config.model,
        "messages": messages,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
    }
    url = f"{config.base_url}/chat/completions"
    try:
        reply = requests.post(url, json=body, headers=headers, timeout=config.timeout_s)
    except requests.RequestException as error:
        raise UserError(f"chat endpoint {url} unreachable: {type(error).__name__}") from error
    if reply.status_code != 200:
        raise UserError(f"chat endpoint {url} answered {reply.status_code}: {reply.text[:200]}")
    try:
        return str(reply.json()["choices"][0]["message"]["content"] or "")
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise UserError(f"chat endpoint {url} sent no chat completion: {reply.text[:200]}") from error
