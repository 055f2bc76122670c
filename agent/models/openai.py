"""A client for OpenAI-compatible ``/v1/chat/completions`` servers, over httpx.

The same few fields work with OpenAI, vLLM, Ollama (``http://localhost:11434/v1``), llama.cpp's
server (``http://localhost:8080/v1``) and most gateways, so nothing else is used: no streaming,
no tool-calling API (the agent writes code instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ..exceptions import (
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
)
from .base import ChatMessage, Model

__all__ = ["OpenAICompatibleModel", "OpenAIModel"]

_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_BACKOFF_S = 8.0


class OpenAICompatibleModel(Model):
    """Chat completions from ``{base_url}/chat/completions``.

    Args:
        model: The model name the server knows (``"gpt-4o-mini"``, ``"Qwen/Qwen2.5-7B-Instruct"``).
        base_url: The API root, ending in ``/v1`` for most servers.
        api_key: Sent as a bearer token. ``None`` reads ``OPENAI_API_KEY``; local servers usually
            need none, and then no ``Authorization`` header is sent.
        temperature, max_tokens: Sent when given; left to the server's defaults otherwise.
        stop: Stop sequences sent with every request, merged with the agent's.
        extra_body: More request fields (``top_p``, ``seed``, vLLM's ``repetition_penalty``...).
        timeout_s: Per-request timeout.
        max_retries: Retries on connection errors, 429 and 5xx (with exponential back-off that
            honours ``Retry-After``). Other errors are not retried.
        headers: Extra HTTP headers.
        transport: An ``httpx.BaseTransport``, to route requests elsewhere (tests, proxies).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not model:
            raise ModelRequestError("a model name is required")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.stop = list(stop or [])
        self.extra_body = dict(extra_body or {})
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.last_usage: dict[str, Any] | None = None
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        request_headers = {"Accept": "application/json", **dict(headers or {})}
        if key:
            request_headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=self.base_url, headers=request_headers, timeout=timeout_s, transport=transport
        )

    def __repr__(self) -> str:
        # Never show the API key.
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def build_request(
        self, messages: Sequence[ChatMessage], *, stop: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """The JSON body sent for ``messages``."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        stops = list(dict.fromkeys([*self.stop, *(stop or [])]))
        if stops:
            body["stop"] = stops
        body.update(self.extra_body)
        return body

    def generate(
        self, messages: Sequence[ChatMessage], *, stop: Sequence[str] | None = None
    ) -> str:
        body = self.build_request(messages, stop=stop)
        response = self._post(body)
        return self._parse(response)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.TimeoutException as exc:
                if attempt < self.max_retries:
                    attempt = self._sleep(attempt, None)
                    continue
                raise ModelTimeoutError(
                    f"the model server at {self.base_url} did not answer within {self.timeout_s}s"
                ) from exc
            except httpx.TransportError as exc:
                if attempt < self.max_retries:
                    attempt = self._sleep(attempt, None)
                    continue
                raise ModelConnectionError(
                    f"cannot reach the model server at {self.base_url}: {exc}"
                ) from exc
            if response.status_code in _RETRY_STATUSES and attempt < self.max_retries:
                attempt = self._sleep(attempt, response.headers.get("retry-after"))
                continue
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError as exc:
                raise self._http_error(response) from exc
            return response

    def _sleep(self, attempt: int, retry_after: str | None) -> int:
        delay = min(_MAX_BACKOFF_S, 0.25 * 2**attempt)
        if retry_after:
            # An HTTP date is not parsed: the back-off is kept.
            with contextlib.suppress(ValueError):
                delay = min(_MAX_BACKOFF_S, max(0.0, float(retry_after)))
        time.sleep(delay)
        return attempt + 1

    def _http_error(self, response: httpx.Response) -> ModelError:
        status = response.status_code
        detail = _error_detail(response)
        where = f"{self.base_url}/chat/completions"
        cls: type[ModelError]
        if status in (401, 403):
            cls, what = ModelAuthenticationError, "rejected the API key"
        elif status == 429:
            cls, what = ModelRateLimitError, "is rate limiting requests"
        elif status >= 500:
            cls, what = ModelServerError, "failed"
        else:
            cls, what = ModelRequestError, "rejected the request"
        return cls(f"the model server {what} (HTTP {status} from {where}): {detail}", status=status)

    def _parse(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelResponseError(
                f"the model server sent a reply that is not JSON: {response.text[:200]!r}",
                status=response.status_code,
            ) from exc
        try:
            message = payload["choices"][0]["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelResponseError(
                f"the model server's reply has no choices[0].message: {str(payload)[:200]}",
                status=response.status_code,
            ) from exc
        usage = payload.get("usage") if isinstance(payload, dict) else None
        self.last_usage = usage if isinstance(usage, dict) else None
        if isinstance(content, list):
            # Some servers send content as a list of typed parts; keep the text ones.
            content = "".join(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, dict) and part.get("type", "text") == "text"
            )
        if not isinstance(content, str):
            raise ModelResponseError(
                f"the model server's reply has no text content (got {type(content).__name__})",
                status=response.status_code,
            )
        return content


def _error_detail(response: httpx.Response) -> str:
    """The server's own error message: OpenAI's ``{"error": {"message": ...}}`` or the body."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if payload.get("detail"):
            return str(payload["detail"])
    return str(payload)[:300]


# The short name most users look for.
OpenAIModel = OpenAICompatibleModel
