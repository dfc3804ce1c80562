from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infopo.envs.intention import IntentionEnv
from infopo.envs.llm import LLMClient, LLMConfig, SimulatorUnavailable, failed_step
from infopo.envs.telepathy import TelepathyEnv


class FakeServer:
    """A chat-completions server on loopback that plays a scripted list of behaviours, then "ok"."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.replies: list[str] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                mode = server.script.pop(0) if server.script else "ok"
                if mode == "sleep":
                    time.sleep(0.5)
                if mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                if mode == "badjson":
                    payload = b'{"choices": [ not json'
                elif mode == "nochoices":
                    payload = b'{"id": "x"}'
                else:
                    text = server.replies.pop(0) if server.replies else "Yes."
                    payload = json.dumps(
                        {"choices": [{"message": {"role": "assistant", "content": text}}]}
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may have timed out
                    self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def config(self, **kw: object) -> LLMConfig:
        base = {
            "base_url": self.url,
            "model": "sim",
            "api_key": "k",
            "timeout_s": 0.2,
            "max_retries": 2,
            "backoff_s": 0.01,
        }
        return LLMConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def test_good_answer(server: FakeServer) -> None:
    server.replies = ["Hello there."]
    client = LLMClient(server.config(temperature=0.3, max_tokens=7))
    assert client.chat([{"role": "user", "content": "hi"}]) == "Hello there."
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer k"
    assert request["model"] == "sim" and request["temperature"] == 0.3 and request["max_tokens"] == 7
    assert request["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("failure", ["500", "sleep", "badjson", "nochoices"])
def test_retries_then_succeeds(server: FakeServer, failure: str) -> None:
    server.script = [failure, failure]
    server.replies = ["Recovered."]
    assert LLMClient(server.config()).chat([{"role": "user", "content": "hi"}]) == "Recovered."
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("failure", "reason"), [("500", "HTTP 500"), ("sleep", "timed out"), ("badjson", "malformed")]
)
def test_unavailable_after_retries(server: FakeServer, failure: str, reason: str) -> None:
    server.script = [failure] * 3
    start = time.monotonic()
    with pytest.raises(SimulatorUnavailable, match=rf"failed after 3 attempt\(s\).*{reason}"):
        LLMClient(server.config()).chat([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 3
    assert time.monotonic() - start < 2.5  # 3 x 0.2 s time-outs + 0.01 + 0.02 s backoff


def test_connection_refused_is_unavailable() -> None:
    config = LLMConfig(
        base_url="http://127.0.0.1:9/v1", model="m", timeout_s=0.2, max_retries=1, backoff_s=0.0
    )
    with pytest.raises(SimulatorUnavailable, match="failed after 2 attempt"):
        LLMClient(config).chat([{"role": "user", "content": "hi"}])


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INFOPO_SIM_BASE_URL", "INFOPO_SIM_MODEL", "INFOPO_SIM_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "fallback-key")
    config = LLMConfig.from_env(timeout_s=5)
    assert (config.base_url, config.model, config.api_key, config.timeout_s) == (
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        "fallback-key",
        5,
    )
    assert "fallback-key" not in repr(config)
    monkeypatch.setenv("INFOPO_SIM_BASE_URL", "http://localhost:8000/v1")
    monkeypatch.setenv("INFOPO_SIM_MODEL", "qwen")
    monkeypatch.setenv("INFOPO_SIM_API_KEY", "own-key")
    config = LLMConfig.from_env()
    assert (config.base_url, config.model, config.api_key) == ("http://localhost:8000/v1", "qwen", "own-key")


def test_failed_step() -> None:
    step = failed_step("down")
    assert (step.feedback, step.reward, step.done, step.info) == (
        "[simulator unavailable] down",
        0.0,
        True,
        {"failed": True, "reason": "down"},
    )


def test_intention_llm_mode(server: FakeServer) -> None:
    env = IntentionEnv(simulator="llm", llm=server.config())
    task = IntentionEnv.load_tasks("test")[0]
    env.reset(task)
    server.replies = ["[1, 2]", "I'd go with the first option."]
    step = env.step("Two questions in one?")
    importances = [d["importance"] for d in task.hidden["details"][:2]]
    assert step.feedback == "I'd go with the first option."
    assert step.reward == pytest.approx({3: 1.0, 2: 0.7, 1: 0.4}[max(importances)] - 0.2)
    assert step.info["covered"] == [0, 1] and not step.done
    assert server.requests[1]["messages"][-1] == {"role": "user", "content": "Two questions in one?"}
    server.script = ["500"] * 3
    step = env.step("Anything else?")
    assert step.feedback.startswith("[simulator unavailable]") and step.done and step.reward == 0.0
    assert step.info["failed"] is True


def test_telepathy_llm_mode(server: FakeServer) -> None:
    env = TelepathyEnv(simulator="llm", llm=server.config())
    env.reset(TelepathyEnv.load_tasks("test")[0])
    server.replies = ["No.", "INCORRECT", "CORRECT"]
    assert env.step("Is it a machine?").feedback == "No."
    assert env.step("ANSWER: a toaster").reward == 0.0
    step = env.step("ANSWER: the thing")
    assert (step.reward, step.done) == (1.0, True)
    server.script = ["sleep"] * 3
    step = env.step("Is it big?")
    assert step.done and step.info == {"failed": True, "reason": step.info["reason"]}
    assert "timed out" in step.info["reason"]
