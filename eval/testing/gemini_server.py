"""A local fake of the Gemini Developer API on 127.0.0.1, for the ``google/`` provider's tests.

Why a real HTTP server: the point is to run ``langchain-google-genai`` and ``google-genai``
end to end (request building, image encoding, error mapping, usage) with no network. Stdlib
only, like :mod:`poise.eval.testing.openai_server`.

Endpoint: ``POST /{v1,v1beta,v1alpha}/models/{model}:generateContent`` (google-genai 3.x
defaults to ``v1``; older releases and the docs use ``v1beta``). The key must arrive in the
``x-goog-api-key`` header (or ``?key=``), as the real API wants; without one the answer is
403 PERMISSION_DENIED. Keys are kept only as "was one sent" plus the set of distinct keys,
so a test can check which key reached this server; nothing is logged.

What it answers is chosen by a marker in any text of the request:

- none: a normal answer (``finishReason: STOP``, ``safetyRatings``, ``usageMetadata``) naming
  the images it received by MIME type;
- ``[[SAFETY]]`` / ``[[FINISH:REASON]]``: a candidate with no content and that finish reason
  (one rating ``blocked: true``), as Google sends a stopped answer;
- ``[[PROMPT_BLOCK]]`` / ``[[PROMPT_BLOCK:REASON]]``: no candidates, only
  ``promptFeedback.blockReason`` (a blocked prompt);
- ``[[STATUS:CODE]]``: a Google error body with that HTTP status (429 carries ``RetryInfo``).

``fail_next(status, times, retry_delay)`` makes the next ``times`` requests fail whatever they
ask, so a test can count the attempts of Poise's retry layer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

__all__ = ["DEFAULT_TEXT", "FakeGemini", "GeminiRequest"]

HOST = "127.0.0.1"
DEFAULT_TEXT = "A harmless answer from the fake Gemini"
IMAGE_TOKENS = 258  # Gemini's count for one image of up to 384 x 384 px
_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):generateContent$")
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)


@dataclass(frozen=True)
class GeminiRequest:
    """One generateContent request as received: texts, decoded images, the raw body."""

    api_version: str
    model: str
    texts: list[str]
    images: list[tuple[str, bytes]]  # (MIME type, decoded bytes) of each inlineData part
    system: str
    body: dict[str, Any] = field(repr=False)
    had_key: bool = False


class FakeGemini:
    """``with FakeGemini() as server: ... server.base_url ...``; thread-safe counters."""

    def __init__(self, retry_delay: str = "0.01s") -> None:
        self.retry_delay = retry_delay
        self._lock = threading.Lock()
        self._requests: list[GeminiRequest] = []
        self._keys: set[str] = set()
        self._failures: list[tuple[int, str]] = []
        self.attempts = 0
        self._http: _HTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeGemini:
        self._http = _HTTPServer((HOST, 0), _Handler)
        self._http.fake = self
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._http is not None, "start the server first"
        return f"http://{HOST}:{self._http.server_address[1]}"

    # -- what tests read and set -------------------------------------------------------------
    @property
    def requests(self) -> list[GeminiRequest]:
        with self._lock:
            return list(self._requests)

    def keys_seen(self) -> set[str]:
        """The distinct API keys that reached this server."""
        with self._lock:
            return set(self._keys)

    def fail_next(self, status: int, times: int = 1, retry_delay: str | None = None) -> None:
        """The next ``times`` requests answer ``status`` (429: with RetryInfo)."""
        with self._lock:
            self._failures.extend([(status, retry_delay or self.retry_delay)] * times)

    def _admit(self, request: GeminiRequest, key: str | None) -> tuple[int, str] | None:
        with self._lock:
            self.attempts += 1
            self._requests.append(request)
            if key:
                self._keys.add(key)
            return self._failures.pop(0) if self._failures else None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections under concurrent clients
    fake: FakeGemini

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client hung up
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # never log: headers carry the key

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        match = _PATH.match(url.path)
        if not match:
            self._send(404, _error(404, f"no route {url.path}"))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._send(400, _error(400, str(exc)))
            return
        key = self.headers.get("x-goog-api-key") or (parse_qs(url.query).get("key") or [None])[0]
        request = _parse(match.group(1), match.group(2), body, bool(key))
        injected = self.server.fake._admit(request, key)
        if not key:
            self._send(403, _error(403, "Method doesn't allow unregistered callers"))
        elif injected is not None:
            self._send(injected[0], _error(injected[0], "injected failure", injected[1]))
        else:
            self._send(*_answer(request, self.server.fake.retry_delay))

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _parse(api_version: str, model: str, body: dict[str, Any], had_key: bool) -> GeminiRequest:
    texts: list[str] = []
    images: list[tuple[str, bytes]] = []
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            if "text" in part:
                texts.append(part["text"])
            blob = part.get("inlineData") or part.get("inline_data")
            if blob:
                # google-genai writes mime_type in snake case inside inlineData; the REST
                # docs write mimeType. The real API takes both.
                mime = blob.get("mimeType") or blob.get("mime_type") or "?"
                images.append((mime, _decode(blob.get("data"))))
    system = " ".join(
        p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", [])
    )
    return GeminiRequest(api_version, model, texts, images, system, body, had_key)


def _decode(data: Any) -> bytes:
    if not isinstance(data, str):
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _error(status: int, message: str, retry_delay: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if status == 429:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        ]
    return {"error": error}


def _ratings(blocked: str | None = None) -> list[dict[str, Any]]:
    return [
        {"category": c, "probability": "HIGH", "blocked": True}
        if c == blocked
        else {"category": c, "probability": "NEGLIGIBLE"}
        for c in _CATEGORIES
    ]


def _usage(prompt: int, answer: int | None) -> dict[str, int]:
    usage = {"promptTokenCount": prompt, "totalTokenCount": prompt + (answer or 0)}
    if answer is not None:
        usage["candidatesTokenCount"] = answer
    return usage


def _answer(request: GeminiRequest, retry_delay: str) -> tuple[int, dict[str, Any]]:
    text = "\n".join([*request.texts, request.system])
    prompt = sum(len(t.split()) for t in request.texts) + IMAGE_TOKENS * len(request.images)
    version = f"{request.model}-fake-001"
    if m := re.search(r"\[\[STATUS:(\d{3})\]\]", text):
        status = int(m.group(1))
        return status, _error(status, f"fake error {status}", retry_delay)
    if m := re.search(r"\[\[PROMPT_BLOCK(?::([A-Z_]+))?\]\]", text):
        reason = m.group(1) or "SAFETY"
        return 200, {
            "promptFeedback": {"blockReason": reason, "safetyRatings": _ratings()},
            "usageMetadata": _usage(prompt, None),
            "modelVersion": version,
        }
    m = re.search(r"\[\[FINISH:([A-Z_]+)\]\]", text)
    finish = m.group(1) if m else ("SAFETY" if "[[SAFETY]]" in text else None)
    if finish:
        return 200, {
            "candidates": [
                {
                    "finishReason": finish,  # the real API leaves the content out
                    "index": 0,
                    "safetyRatings": _ratings("HARM_CATEGORY_DANGEROUS_CONTENT"),
                }
            ],
            "usageMetadata": _usage(prompt, 0),
            "modelVersion": version,
        }
    kinds = ", ".join(mime for mime, _ in request.images) or "no image"
    reply = f"{DEFAULT_TEXT} ({kinds})."
    return 200, {
        "candidates": [
            {
                "content": {"parts": [{"text": reply}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": _ratings(),
            }
        ],
        "usageMetadata": _usage(prompt, len(reply.split())),
        "modelVersion": version,
    }
