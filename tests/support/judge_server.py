"""A real OpenAI-compatible chat endpoint for tests: a stdlib HTTP server on a free local port.

Each test scripts the replies (text, or an HTTP status to fail with, or a redirect) and reads
back what the judge client sent: headers, the request body, how many requests were in flight at
once, and how many TCP connections it accepted (a refused host must see none at all).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = str | int  # the reply's text, or an HTTP status code to answer with instead


@dataclass
class JudgeServer:
    url: str = ""
    port: int = 0
    answer: Callable[[dict[str, Any]], Answer] = lambda body: "Score: 7"
    delay_seconds: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    redirect_to: str = ""  # when set, every request is answered 307 with this Location
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order; then with "Score: 7"."""
        pending = deque(answers)
        self.answer = lambda body: pending.popleft() if pending else "Score: 7"

    def prompts(self) -> list[str]:
        return [request["body"]["messages"][-1]["content"] for request in self.requests]

    def _enter(self, request: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def _accepted(self) -> None:
        with self.lock:
            self.connections += 1


def completion(text: str, body: dict[str, Any]) -> dict[str, Any]:
    prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": len(text.split()),
            "total_tokens": len(prompt.split()) + len(text.split()),
        },
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        state: JudgeServer = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if state.redirect_to:
            self._redirect(state.redirect_to)
            return
        state._enter(
            {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        try:
            time.sleep(state.delay_seconds)
            answer = state.answer(body) if self.path == "/v1/chat/completions" else 404
        finally:
            state._leave()
        if isinstance(answer, int):
            error = {"message": f"test server answers {answer}", "type": "test", "code": None}
            self._send(answer, {"error": error})
        else:
            self._send(200, completion(answer, body))

    def _redirect(self, location: str) -> None:
        self.send_response(307)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass


class _Server(ThreadingHTTPServer):
    state: JudgeServer

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.state._accepted()  # called once per accepted TCP connection
        return True


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextmanager
def serve(host: str = "127.0.0.1", port: int = 0) -> Iterator[JudgeServer]:
    """A running server on `host` (any local address: 127.0.0.2, ::1) for the block."""
    server_class = _Server6 if ":" in host else _Server
    httpd = server_class((host, port), _Handler)
    httpd.daemon_threads = True
    shown = f"[{host}]" if ":" in host else host
    httpd.state = JudgeServer(url=f"http://{shown}:{httpd.server_port}/v1", port=httpd.server_port)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
