"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests and ``poise bench pipeline``.

Why a real server rather than a patched client: the point is to run the real ``openai`` client
and ``langchain_openai.ChatOpenAI`` end to end -- their request building, image encoding,
retries, structured-output parsing, connection pooling and concurrency -- without the network.
Anything that mocks below the HTTP layer would skip exactly the code we want to exercise.

Stdlib only (``http.server.ThreadingHTTPServer``), because it ships in the package and the
benchmark must not pull in a web framework.

Endpoints
    ``POST /v1/chat/completions`` -- non-streaming, and SSE streaming when ``stream: true``
    (chunked ``chat.completion.chunk`` events, a usage chunk when
    ``stream_options.include_usage`` is set, then ``data: [DONE]``).
    ``GET /v1/models`` and ``GET /v1/models/{id}``.

What the assistant says is decided by ``reply(ChatRequest) -> str | dict``:

* a ``str`` is the message content, sent verbatim (also under JSON mode, so a test can
  simulate a model that emits malformed JSON);
* a ``dict`` is JSON-encoded as the content, or, when the request carries function
  ``tools`` (and ``tool_choice`` is not ``"none"``), becomes the arguments of a ``tool_calls``
  message calling the forced tool or else the first one. So under ``response_format``
  ``json_schema``/``json_object`` or with tools, ``reply`` should return a dict.

The default reply returns :data:`DEFAULT_TEXT`, except where the request demands structure:
for a forced tool call or a ``json_schema`` response format it returns a minimal instance of
the schema (:func:`schema_example`), for ``json_object`` ``{"response": DEFAULT_TEXT}``. So
``with_structured_output`` works against the server with no reply function at all.

``reply`` runs in the request's handler thread, concurrently with other requests: it must be
thread-safe. If it raises, the request answers HTTP 500 with the exception in the error message
(not counted in ``failures``, which counts injected failures only) and the exception is kept in
``errors``.

Latency is slept in the handler thread, so concurrent requests overlap as against a real API.
API keys are never logged or echoed; the server logs nothing.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_TEXT",
    "ChatRequest",
    "MockOpenAIServer",
    "Reply",
    "default_reply",
    "schema_example",
]

DEFAULT_TEXT = "This is a reply from the Poise mock server."
DEFAULT_MODELS = ("mock-model",)
_SYSTEM_ROLES = ("system", "developer")  # o-series models take "developer" for "system"


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request, pre-digested so a reply function stays short.

    ``text`` joins the text parts of the user and system messages (not assistant/tool turns),
    ``images`` holds the decoded bytes of every ``data:`` URL image part in message order (so a
    reply can open them with Pillow), ``raw`` is the whole JSON body for anything else.
    """

    model: str
    messages: list[dict[str, Any]]
    text: str
    system: str
    images: list[bytes]
    response_format: dict[str, Any] | None
    raw: dict[str, Any]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    number: int = 0  # 1-based arrival order among chat-completion requests

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The JSON schema of a ``json_schema`` response format, else None."""
        rf = self.response_format or {}
        if rf.get("type") != "json_schema":
            return None
        schema = (rf.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else None

    @property
    def tool_name(self) -> str | None:
        """The function a dict reply will call: the forced one, else the first; None if none.

        None also when ``tool_choice`` is ``"none"``: then a dict reply is plain JSON content.
        """
        names = [t["function"]["name"] for t in _function_tools(self.tools)]
        if not names or self.tool_choice == "none":
            return None
        choice = self.tool_choice
        if isinstance(choice, dict):
            # Chat Completions form {"type": "function", "function": {"name": ...}}; the flat
            # Responses-style {"type": "function", "name": ...} is accepted too.
            forced = (choice.get("function") or {}).get("name") or choice.get("name")
            if forced in names:
                return forced
        return names[0]

    @property
    def tool_forced(self) -> bool:
        """Whether the request obliges the model to call a tool (a named one or ``required``)."""
        return self.tool_name is not None and (
            isinstance(self.tool_choice, dict) or self.tool_choice == "required"
        )

    def tool_parameters(self, name: str | None = None) -> dict[str, Any] | None:
        """The JSON schema of a tool's parameters (default: :attr:`tool_name`'s)."""
        name = name or self.tool_name
        for tool in _function_tools(self.tools):
            if tool["function"]["name"] == name:
                params = tool["function"].get("parameters")
                return params if isinstance(params, dict) else {}
        return None


Reply = Callable[[ChatRequest], "str | dict[str, Any]"]


def default_reply(request: ChatRequest) -> str | dict[str, Any]:
    """Fixed text, or a minimal schema-valid object where the request demands structure.

    Why: the benchmark and smoke tests should run any pipeline, including structured-output
    steps, without each caller writing a reply function.
    """
    if request.tool_forced:
        return schema_example(request.tool_parameters() or {})
    schema = request.json_schema
    if schema is not None:
        return schema_example(schema)
    if (request.response_format or {}).get("type") == "json_object":
        return {"response": DEFAULT_TEXT}
    return DEFAULT_TEXT


def schema_example(schema: dict[str, Any], _root: dict[str, Any] | None = None) -> Any:
    """A minimal value valid against a (Pydantic-generated) JSON schema.

    Covers what Pydantic emits: ``$ref`` into ``$defs``/``definitions``, ``anyOf``/``oneOf``
    (first non-null branch), ``allOf``, ``enum``/``const``/``default``, objects (every listed
    property, as OpenAI strict mode requires all), arrays (``minItems`` items), and scalars
    respecting ``minimum``/``minLength``. Not a general JSON-schema solver.
    """
    root = _root if _root is not None else schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {}) if part else target
        return schema_example(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return schema_example(branches[0], root)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for branch in schema["allOf"]:
            value = schema_example(branch, root)
            if isinstance(value, dict):
                merged.update(value)
            else:
                return value
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: schema_example(sub, root) for name, sub in props.items()}
    if kind == "array":
        items = schema.get("items") or {}
        return [schema_example(items, root) for _ in range(int(schema.get("minItems", 0)))]
    if kind == "string":
        return "x" * int(schema.get("minLength", 0))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(0, low) if "maximum" not in schema else min(max(0, low), schema["maximum"])
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            value = schema["exclusiveMinimum"] + 1
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return {}


class MockOpenAIServer:
    """An OpenAI Chat Completions server on 127.0.0.1 (OS-chosen port) in a daemon thread.

    Use as a context manager (``with MockOpenAIServer(reply=...) as server:``) and point a
    client at :attr:`base_url` with any API key (or the one given as ``require_api_key``).

    ``decode_images=True`` decodes every pixel of every image (Pillow) before answering, as a
    real vision server must, and answers 400 for an image it cannot decode.

    ``fail_every=n`` makes every n-th chat-completion request (n, 2n, ...) answer
    ``fail_status`` (500 by default; 429 to exercise rate-limit handling) with an OpenAI-style
    error body, so the clients' own retries can be tested; ``retry_after`` (seconds) adds
    ``retry-after``/``retry-after-ms`` headers to those answers, which the ``openai`` client
    honours instead of its ~0.5 s exponential backoff (keeps retry tests fast).

    Counters (thread-safe): :attr:`request_count` (chat-completion requests that passed
    authentication and parsing, failed or not), :attr:`failures` (injected failures),
    :attr:`requests` (the last ``max_recorded`` :class:`ChatRequest` objects),
    :attr:`errors` (exceptions raised by ``reply``).
    """

    def __init__(
        self,
        reply: Reply | None = None,
        *,
        latency: float = 0.0,
        fail_every: int | None = None,
        fail_status: int = 500,
        retry_after: float | None = None,
        require_api_key: str | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
        max_recorded: int = 10_000,
        decode_images: bool = False,
    ) -> None:
        if fail_every is not None and fail_every < 1:
            raise ValueError("fail_every must be a positive integer or None")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self.reply: Reply = reply or default_reply
        self.latency = latency
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.models = models
        self.decode_images = decode_images
        self._api_key = require_api_key
        self._lock = threading.Lock()
        self._request_count = 0
        self._failures = 0
        self._requests: collections.deque[ChatRequest] = collections.deque(maxlen=max_recorded)
        self._errors: list[BaseException] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> MockOpenAIServer:
        """Bind 127.0.0.1:0 and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.mock = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"poise-mock-openai:{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close kept-alive connections; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_open_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MockOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The OS-chosen port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("MockOpenAIServer is not running; call start() or use `with`")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: what ``base_url=`` of the clients expects."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- counters --------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    @property
    def failures(self) -> int:
        with self._lock:
            return self._failures

    @property
    def requests(self) -> list[ChatRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[BaseException]:
        with self._lock:
            return list(self._errors)

    # -- used by the handler ---------------------------------------------------------------

    def _authorised(self, header: str | None) -> bool:
        if self._api_key is None:
            return True
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self._api_key

    def _admit(self) -> tuple[int, bool]:
        """Number the request and decide whether it is an injected failure."""
        with self._lock:
            self._request_count += 1
            number = self._request_count
            fail = self.fail_every is not None and number % self.fail_every == 0
            if fail:
                self._failures += 1
            return number, fail

    def _record(self, request: ChatRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)


# -- HTTP plumbing -----------------------------------------------------------------------------


class _BadRequest(Exception):
    """A request the real API would refuse with 400; the message goes to the client."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class _HTTPServer(ThreadingHTTPServer):
    """Threaded server: one daemon thread per connection, a deep accept backlog."""

    daemon_threads = True
    request_queue_size = 1024
    mock: MockOpenAIServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, conn: socket.socket, open_: bool) -> None:
        with self._conn_lock:
            (self._connections.add if open_ else self._connections.discard)(conn)

    def close_open_connections(self) -> None:
        """Shut kept-alive sockets so their handler threads end with the server."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients hanging up mid-response is normal when a test ends early."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients pool connections
    server: _HTTPServer
    server_version = "PoiseMockOpenAI/1.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Log nothing: keeps test output clean and can never leak a header."""

    # -- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        mock = self.server.mock
        if not mock._authorised(self.headers.get("Authorization")):
            return self._unauthorised()
        if path == "/v1/models":
            return self._send_json(
                200, {"object": "list", "data": [_model(m) for m in mock.models]}
            )
        if path.startswith("/v1/models/"):
            model_id = urllib.parse.unquote(path[len("/v1/models/") :])
            if model_id in mock.models:
                return self._send_json(200, _model(model_id))
            return self._error(
                404,
                f"The model '{model_id}' does not exist",
                "invalid_request_error",
                "model_not_found",
            )
        return self._error(404, f"Unknown path: GET {path}", "invalid_request_error", "not_found")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self._read_body()  # always read, so a kept-alive connection stays in sync
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        mock = self.server.mock
        if not mock._authorised(self.headers.get("Authorization")):
            return self._unauthorised()
        if path != "/v1/chat/completions":
            return self._error(
                404, f"Unknown path: POST {path}", "invalid_request_error", "not_found"
            )
        try:
            payload = json.loads(body or b"null")
            if not isinstance(payload, dict):
                raise _BadRequest("The request body must be a JSON object.")
            request_fields = _parse_chat_request(payload)
        except json.JSONDecodeError as exc:
            return self._error(400, f"Invalid JSON body: {exc}", "invalid_request_error")
        except _BadRequest as exc:
            return self._error(400, str(exc), "invalid_request_error", param=exc.param)

        if mock.decode_images:
            try:
                _decode_pixels(request_fields["images"])
            except _BadRequest as exc:
                return self._error(400, str(exc), "invalid_request_error", param=exc.param)
        number, fail = mock._admit()
        request = ChatRequest(number=number, **request_fields)
        mock._record(request)
        if mock.latency:
            time.sleep(mock.latency)  # in this handler thread: concurrent requests overlap
        if fail:
            return self._injected_failure(number)
        try:
            answer = mock.reply(request)
        except Exception as exc:  # noqa: BLE001 - reported to the client and kept
            mock._record_error(exc)
            return self._error(
                500, f"reply function raised {type(exc).__name__}: {exc}", "server_error"
            )
        if not isinstance(answer, str | dict):
            err = TypeError(f"reply must return str or dict, not {type(answer).__name__}")
            mock._record_error(err)
            return self._error(500, str(err), "server_error")
        completion = _completion(request, answer)
        if payload.get("stream"):
            return self._send_stream(request, completion)
        return self._send_json(200, completion)

    # -- request body ----------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- responses -------------------------------------------------------------------------

    def _send_json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_mock_{id(body):x}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away

    def _error(
        self,
        status: int,
        message: str,
        kind: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self._send_json(status, body, headers)

    def _unauthorised(self) -> None:
        # The real API echoes a masked key; we echo nothing at all.
        self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    def _injected_failure(self, number: int) -> None:
        mock = self.server.mock
        headers = {}
        if mock.retry_after is not None:
            headers["retry-after-ms"] = str(max(1, round(mock.retry_after * 1000)))
            headers["retry-after"] = str(max(1, round(mock.retry_after)))
        status = mock.fail_status
        if status == 429:
            kind, code = "rate_limit_exceeded", "rate_limit_exceeded"
            message = f"Rate limit reached (injected failure on request {number})."
        else:
            kind, code = "server_error", None
            message = f"The server had an error (injected failure on request {number})."
        self._error(status, message, kind, code, headers=headers)

    def _send_stream(self, request: ChatRequest, completion: dict[str, Any]) -> None:
        """Replay a finished completion as SSE chunks, as the real API streams it."""
        message = completion["choices"][0]["message"]
        base = {
            "id": completion["id"],
            "object": "chat.completion.chunk",
            "created": completion["created"],
            "model": completion["model"],
            "system_fingerprint": completion["system_fingerprint"],
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        for piece in re.findall(r"\s*\S+\s*|\s+", message.get("content") or ""):
            events.append(chunk({"content": piece}))
        for index, call in enumerate(message.get("tool_calls") or []):
            events.append(chunk({"tool_calls": [{"index": index, **call}]}))
        events.append(chunk({}, completion["choices"][0]["finish_reason"]))
        if (request.raw.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": completion["usage"]})
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in events:
                self._write_chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


# -- payload helpers ---------------------------------------------------------------------------


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "poise-mock"}


def _function_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        t
        for t in tools
        if isinstance(t, dict)
        and t.get("type", "function") == "function"
        and isinstance(t.get("function"), dict)
    ]


def _text_parts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
    return []


def _decode_data_url(url: str) -> bytes:
    header, sep, data = url.partition(",")
    if not sep:
        raise _BadRequest("Invalid image data URL: no comma.", "messages")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _BadRequest(f"Invalid base64 image data: {exc}", "messages") from exc
    return urllib.parse.unquote_to_bytes(data)


def _decode_pixels(images: list[bytes]) -> None:
    """Decode every pixel of every image, as a real vision server must before its model runs.

    Why: the benchmark's server should cost what a real one costs per image (it shares the
    machine's cores with the client being measured), and a truncated image should fail here.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    for data in images:
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise _BadRequest(f"Invalid image: {exc}", "messages") from exc


def _parse_chat_request(payload: dict[str, Any]) -> dict[str, Any]:
    """Validate the body like the real API does (enough to catch client bugs) and digest it."""
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("You must provide a model parameter.", "model")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty array.", "messages")
    texts: list[str] = []
    system: list[str] = []
    images: list[bytes] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise _BadRequest(f"messages[{i}] must be an object with a 'role'.", f"messages[{i}]")
        role, content = msg["role"], msg.get("content")
        if role in _SYSTEM_ROLES or role == "user":
            parts = _text_parts(content)
            texts.extend(parts)
            if role in _SYSTEM_ROLES:
                system.extend(parts)
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    image = part.get("image_url")
                    url = image.get("url") if isinstance(image, dict) else image
                    if not isinstance(url, str):
                        raise _BadRequest(
                            f"messages[{i}]: image_url without a url.", f"messages[{i}]"
                        )
                    if url.startswith("data:"):
                        images.append(_decode_data_url(url))
    response_format = payload.get("response_format")
    if response_format is not None and not isinstance(response_format, dict):
        raise _BadRequest("'response_format' must be an object.", "response_format")
    tools = payload.get("tools") or []
    if not isinstance(tools, list):
        raise _BadRequest("'tools' must be an array.", "tools")
    return {
        "model": model,
        "messages": messages,
        "text": "\n".join(texts),
        "system": "\n".join(system),
        "images": images,
        "response_format": response_format,
        "raw": payload,
        "tools": tools,
        "tool_choice": payload.get("tool_choice"),
    }


def _words(text: str) -> int:
    return len(text.split())


def _completion(request: ChatRequest, answer: str | dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` object for a reply; token counts are word counts."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    tool = request.tool_name if isinstance(answer, dict) else None
    if tool is not None:
        arguments = json.dumps(answer)
        message["tool_calls"] = [
            {
                "id": f"call_mock_{request.number}_0",
                "type": "function",
                "function": {"name": tool, "arguments": arguments},
            }
        ]
        finish, completion_tokens = "tool_calls", _words(arguments)
    else:
        content = json.dumps(answer) if isinstance(answer, dict) else answer
        message["content"] = content
        finish, completion_tokens = "stop", _words(content)
    prompt_tokens = sum(_words(t) for m in request.messages for t in _text_parts(m.get("content")))
    return {
        "id": f"chatcmpl-mock{request.number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "system_fingerprint": "fp_poise_mock",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
