"""A misbehaving OpenAI-compatible server on 127.0.0.1 for the fault suite.

Unlike ``poise.eval.testing.openai_server`` (a well-behaved API with optional injected failures), this
one is built to hurt: it can accept a request and never answer, fail every request with one
status, send a huge reply, or answer slowly. It counts requests and keeps each request's
headers and body, so tests can check attempts and which key arrived.

It stops by itself: every handler gives up after ``lifetime`` seconds, and the serving
thread shuts down after ``lifetime`` too, so a failing test cannot leave it running.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "Sure, here is a helpful answer about the scene."


@dataclass
class Seen:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]
    at: float


@dataclass
class FaultServer:
    """``mode``: ok | hang | status | huge. ``status``/``retry_after`` for mode=status."""

    mode: str = "ok"
    status: int = 500
    retry_after: float | None = None
    latency: float = 0.0
    huge_chars: int = 5_000_000
    lifetime: float = 60.0
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> FaultServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                with server._lock:
                    server.seen.append(
                        Seen(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw),
                            time.monotonic(),
                        )
                    )
                if server.mode == "hang":
                    server._stop.wait(server.lifetime)  # accept, never answer
                    self.close_connection = True
                    return
                if server.latency:
                    time.sleep(server.latency)
                if server.mode == "status":
                    headers = {}
                    if server.retry_after is not None:
                        headers["retry-after"] = str(server.retry_after)
                    return self._send(
                        server.status, {"error": {"message": "injected", "type": "x"}}, headers
                    )
                text = "x" * server.huge_chars if server.mode == "huge" else ANSWER
                self._send(200, _completion(text))

            def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._timer.cancel()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.seen)


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fault",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }
