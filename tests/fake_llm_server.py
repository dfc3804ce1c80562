"""A chat-completions server on loopback for the LLM-mode tests (`server` fixture in conftest)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from infopo.envs.llm import LLMConfig


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many clients connect at once in the concurrency tests


class FakeServer:
    """A chat-completions server on loopback that plays a scripted list of behaviours, then "ok".

    - `script`: failure modes for the next requests ("500", "sleep", "badjson", "nochoices"; then "ok");
    - `replies`: the texts of the next "ok" answers (then "Yes.");
    - `responder`: when set, answers every "ok" request from its body instead of `replies` (scripted
      agents and users that reply by content); None from it is an HTTP 500 answer;
    - `delay`: seconds every request waits before it is answered;
    - `hold`: when set, requests wait (at most `delay` seconds) until `hold` of them are in flight at once,
      and from then on none waits: a client that really sends `hold` requests concurrently reaches
      `max_active >= hold` however slowly its threads get scheduled;
    - `max_active`: the most requests it was handling at the same time;
    - GET `/models` lists `models`.
    """

    def __init__(self) -> None:
        self.script: list[str] = []
        self.replies: list[str] = []
        self.requests: list[dict] = []
        self.responder: Callable[[dict], str | None] | None = None
        self.delay = 0.0
        self.hold: int | None = None
        self.held = threading.Condition()
        self.models = ["sim"]
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may have timed out
                    self.wfile.write(payload)

            def do_GET(self) -> None:
                if not self.path.endswith("/models"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                data = [{"id": name, "object": "model", "owned_by": "test"} for name in server.models]
                self._send(200, json.dumps({"object": "list", "data": data}).encode())

            def do_POST(self) -> None:
                with server.lock:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                with server.held:
                    server.held.notify_all()
                try:
                    self._answer()
                finally:
                    with server.lock:
                        server.active -= 1

            def _answer(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = {"path": self.path, "auth": self.headers.get("Authorization"), **body}
                server.requests.append(request)
                if server.hold is None:
                    time.sleep(server.delay)
                else:
                    with server.held:
                        server.held.wait_for(lambda: server.max_active >= server.hold, server.delay)
                mode = server.script.pop(0) if server.script else "ok"
                if mode == "sleep":
                    time.sleep(0.5)
                if mode in ("ok", "sleep"):
                    if server.responder is not None:
                        text = server.responder(request)
                    else:
                        text = server.replies.pop(0) if server.replies else "Yes."
                    if text is None:
                        mode = "500"
                if mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                if mode == "badjson":
                    payload = b'{"choices": [ not json'
                elif mode == "nochoices":
                    payload = b'{"id": "x"}'
                else:
                    message = {"role": "assistant", "content": text}
                    reply = {"model": body.get("model", ""), "choices": [{"message": message}]}
                    payload = json.dumps(reply).encode()
                self._send(200, payload)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
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
