"""OpenAICompatibleModel against a real HTTP server on 127.0.0.1 speaking /v1/chat/completions."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from agent import (
    CodeAgent,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
    OpenAICompatibleModel,
    OpenAIModel,
)

API_KEY = "sk-test-123"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; bytes -> sent raw
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        **extra,
    }


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The timeout test hangs up before the reply: a broken pipe here is expected.
        pass


class FakeLLMServer:
    """A chat-completions endpoint that answers from a script and records every request."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        llm_server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                llm_server.requests.append({
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(raw) if raw else None,
                })
                reply = llm_server.replies.pop(0) if llm_server.replies else Reply(
                    500, {"error": {"message": "script exhausted"}})
                if reply.delay_s:
                    threading.Event().wait(reply.delay_s)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(
                    reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def reply(self, *contents: str) -> None:
        self.replies += [Reply(body=completion(c)) for c in contents]


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    srv = FakeLLMServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def model(llm_server: FakeLLMServer) -> Iterator[OpenAICompatibleModel]:
    m = OpenAICompatibleModel("test-model", base_url=llm_server.base_url, api_key=API_KEY,
                              max_retries=0, timeout_s=5)
    yield m
    m.close()


def test_request_shape_and_reply(llm_server, model):
    llm_server.reply("Hello!")
    model.temperature = 0.2
    model.max_tokens = 64
    model.extra_body = {"seed": 7}
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert model.generate(messages, stop=["Observation:"]) == "Hello!"
    [request] = llm_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert request["headers"]["content-type"] == "application/json"
    assert request["body"] == {
        "model": "test-model",
        "messages": messages,
        "temperature": 0.2,
        "max_tokens": 64,
        "stop": ["Observation:"],
        "seed": 7,
    }
    assert model.last_usage == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def test_no_key_means_no_authorization_header(llm_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm_server.reply("ok")
    with OpenAICompatibleModel("m", base_url=llm_server.base_url + "/") as m:
        assert m.generate([{"role": "user", "content": "x"}]) == "ok"
    assert "authorization" not in llm_server.requests[0]["headers"]
    assert "temperature" not in llm_server.requests[0]["body"]
    assert "stop" not in llm_server.requests[0]["body"]


def test_key_from_environment(llm_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    llm_server.reply("ok")
    with OpenAIModel("m", base_url=llm_server.base_url) as m:
        m.generate([{"role": "user", "content": "x"}])
        assert "sk-env" not in repr(m)
    assert llm_server.requests[0]["headers"]["authorization"] == "Bearer sk-env"


def test_content_parts_are_joined(llm_server, model):
    llm_server.replies.append(Reply(body=completion([{"type": "text", "text": "a"},
                                                 {"type": "text", "text": "b"}])))
    assert model.generate([{"role": "user", "content": "x"}]) == "ab"


def test_full_agent_run_over_http(llm_server, model, fake_executor):
    llm_server.reply(
        "Thought: compute.\n```python\nvalue = 21 * 2\nprint(value)\n```",
        "Thought: done.\n```python\nfinal_answer(value)\n```",
    )
    agent = CodeAgent([], model, executor=fake_executor)
    assert agent.run("What is 21*2?") == 42
    assert len(llm_server.requests) == 2
    first, second = (r["body"] for r in llm_server.requests)
    assert first["model"] == "test-model" and first["stop"] == ["Observation:"]
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][1]["content"] == "New task:\nWhat is 21*2?"
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][3]["content"].startswith("Observation:\nExecution logs:\n42")
    assert agent.steps[0].token_usage == {"prompt_tokens": 10, "completion_tokens": 5,
                                          "total_tokens": 15}


@pytest.mark.parametrize(
    "reply, error, text",
    [
        (Reply(401, {"error": {"message": "Incorrect API key provided"}}),
         ModelAuthenticationError, "Incorrect API key provided"),
        (Reply(403, {"detail": "forbidden"}), ModelAuthenticationError, "forbidden"),
        (Reply(404, {"error": {"message": "model 'x' not found"}}), ModelRequestError,
         "not found"),
        (Reply(429, {"error": "slow down"}), ModelRateLimitError, "slow down"),
        (Reply(500, {"error": {"message": "CUDA out of memory"}}), ModelServerError,
         "CUDA out of memory"),
        (Reply(502, b"<html>bad gateway</html>"), ModelServerError, "bad gateway"),
    ],
)
def test_http_errors_map_to_agent_exceptions(llm_server, model, reply, error, text):
    llm_server.replies.append(reply)
    with pytest.raises(error, match=text) as caught:
        model.generate([{"role": "user", "content": "x"}])
    assert caught.value.status == reply.status
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)
    assert str(reply.status) in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [b"this is not json", b'{"choices": []}', b'{"object": "error"}',
     json.dumps(completion(None)).encode()],
)
def test_malformed_replies(llm_server, model, body):
    llm_server.replies.append(Reply(200, body))
    with pytest.raises(ModelResponseError):
        model.generate([{"role": "user", "content": "x"}])


def test_malformed_json_is_chained(llm_server, model):
    llm_server.replies.append(Reply(200, b"{truncated"))
    with pytest.raises(ModelResponseError, match="not JSON") as caught:
        model.generate([{"role": "user", "content": "x"}])
    assert isinstance(caught.value.__cause__, ValueError)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused():
    with OpenAICompatibleModel("m", base_url=f"http://127.0.0.1:{_free_port()}/v1",
                               max_retries=0) as m, pytest.raises(ModelConnectionError) as caught:
        m.generate([{"role": "user", "content": "x"}])
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "cannot reach" in str(caught.value)


def test_timeout(llm_server):
    llm_server.replies.append(Reply(body=completion("late"), delay_s=1.0))
    with OpenAICompatibleModel("m", base_url=llm_server.base_url, timeout_s=0.2,
                               max_retries=0) as m, pytest.raises(ModelTimeoutError) as caught:
        m.generate([{"role": "user", "content": "x"}])
    assert isinstance(caught.value, ModelConnectionError)
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


def test_retries_transient_errors_then_succeeds(llm_server):
    llm_server.replies += [
        Reply(503, {"error": "loading model"}, headers={"Retry-After": "0"}),
        Reply(429, {"error": "busy"}, headers={"Retry-After": "0"}),
        Reply(body=completion("finally")),
    ]
    with OpenAICompatibleModel("m", base_url=llm_server.base_url, max_retries=2) as m:
        assert m.generate([{"role": "user", "content": "x"}]) == "finally"
    assert len(llm_server.requests) == 3


def test_does_not_retry_client_errors(llm_server):
    llm_server.replies += [Reply(400, {"error": "bad"}), Reply(body=completion("unused"))]
    with OpenAICompatibleModel("m", base_url=llm_server.base_url, max_retries=3) as m, \
            pytest.raises(ModelRequestError):
        m.generate([{"role": "user", "content": "x"}])
    assert len(llm_server.requests) == 1


def test_agent_run_surfaces_model_errors(llm_server, model, fake_executor):
    llm_server.replies.append(Reply(401, {"error": {"message": "bad key"}}))
    agent = CodeAgent([], model, executor=fake_executor)
    with pytest.raises(ModelError, match="bad key"):
        agent.run("x")


def test_empty_model_name_is_rejected():
    with pytest.raises(ModelRequestError):
        OpenAICompatibleModel("")


def test_cli_runs_a_task_over_http(llm_server, fake_executor, monkeypatch, capsys):
    from agent.__main__ import main

    monkeypatch.setattr("agent.agent.create_executor", lambda executor_type, **kw: fake_executor)
    llm_server.reply("```python\nprint('working')\n```", "```python\nfinal_answer(6 * 7)\n```")
    code = main(["--model", "cli-model", "--base-url", llm_server.base_url, "--api-key", "k",
                 "--temperature", "0", "What is 6*7?"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "42\n"
    assert "--- step 1" in err and "> Execution logs:" in err and "working" in err
    body = llm_server.requests[0]["body"]
    assert body["model"] == "cli-model" and body["temperature"] == 0
    assert fake_executor.closed  # the agent closes the executor it created


def test_cli_reports_errors(llm_server, fake_executor, monkeypatch, capsys):
    from agent.__main__ import main

    monkeypatch.setattr("agent.agent.create_executor", lambda executor_type, **kw: fake_executor)
    llm_server.replies.append(Reply(401, {"error": {"message": "bad key"}}))
    assert main(["--model", "m", "--base-url", llm_server.base_url, "--quiet", "t"]) == 1
    assert "ModelAuthenticationError" in capsys.readouterr().err
    monkeypatch.delenv("SELFBOX_AGENT_MODEL", raising=False)
    assert main(["t"]) == 2


def test_cli_max_steps(llm_server, fake_executor, monkeypatch, capsys):
    from agent.__main__ import main

    monkeypatch.setattr("agent.agent.create_executor", lambda executor_type, **kw: fake_executor)
    llm_server.reply("```python\nx = 1\n```")
    assert main(["--model", "m", "--base-url", llm_server.base_url, "--max-steps", "1", "t"]) == 1
    assert "no answer after 1 steps" in capsys.readouterr().err
