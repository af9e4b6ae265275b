"""A fake of OpenAI's and Anthropic's batch APIs on 127.0.0.1, for testing ``--batch`` offline.

Why a real HTTP server: ``--batch`` must be tested through the real ``openai`` and
``anthropic`` SDKs and LangChain's own request building and parsing, which mocks below HTTP
would skip. Stdlib only, in a daemon thread; state lives in memory, so a resume test keeps
the server up and restarts only Poise.

One port serves both vendors (OpenAI's base URL has ``/v1``, Anthropic's has not):

- OpenAI: ``POST /v1/files`` (multipart, purpose ``batch``), ``POST /v1/batches``,
  ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``GET /v1/files/{id}/content``,
  and the normal ``POST /v1/chat/completions``;
- Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
  ``GET /v1/messages/batches/{id}/results``, and the normal ``POST /v1/messages``.

Normal calls and batched ones are answered by the same deterministic function of the request
body (text echoing the prompt's digest; a minimal schema instance with a digest in its string
fields for JSON-schema and forced-tool requests), ids included, so a batched run and a normal
run can be compared field by field. A batch finishes on its ``polls``-th retrieve. A request
for which ``fail(custom_id, body)`` is true fails inside a *completed* batch (OpenAI: HTTP 400
row in the error file; Anthropic: an ``errored`` result). Anthropic's ``results_url`` names a
host that does not resolve: a client that followed it would send its key elsewhere.

Validation as documented: unique ``custom_id`` (Anthropic: ``[A-Za-z0-9_-]{1,64}``), one
model per OpenAI file, the file's ``url`` equal to the batch endpoint, no ``stream``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from poise.eval.testing.openai_server import schema_example

Fail = Callable[[str, dict[str, Any]], bool]
FOREIGN_RESULTS_HOST = "https://results.invalid"
_ANTHROPIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _digest(body: dict[str, Any]) -> str:
    """The request's fingerprint; ``stream: false`` (normal calls only) does not count."""
    kept = {k: v for k, v in body.items() if k != "stream"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:10]


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [
        p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text"
    ]


def _images(content: Any) -> int:
    if isinstance(content, str):
        return 0
    return sum(
        1 for p in content or [] if isinstance(p, dict) and p.get("type") in ("image", "image_url")
    )


def _prompt_tokens(body: dict[str, Any]) -> int:
    """Words of the system and message text, plus 85 per image (a fixed, documented rule)."""
    system = body.get("system")
    texts = _texts(system) if system else []
    images = 0
    for message in body.get("messages", []):
        texts += _texts(message.get("content"))
        images += _images(message.get("content"))
    return sum(len(t.split()) for t in texts) + 85 * images


def _fill(value: Any, tag: str) -> Any:
    """A schema example with ``tag`` in its free-text string fields (enums stay valid)."""
    if isinstance(value, dict):
        return {k: _fill(v, tag) for k, v in value.items()}
    if value == "":
        return f"fake {tag}"
    return value


def _answer(body: dict[str, Any], schema: dict[str, Any] | None) -> str | dict[str, Any]:
    tag = _digest(body)
    if schema is not None:
        return _fill(schema_example(schema), tag)
    last = body.get("messages", [{}])[-1]
    words = " ".join(_texts(last.get("content"))).split()
    return f"Fake answer {tag} to: {' '.join(words[-6:])}"


def openai_completion(body: dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` the fake returns for ``body`` (normal and batched alike)."""
    fmt = body.get("response_format") or {}
    schema = (
        (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    )
    answer = _answer(body, schema)
    content = json.dumps(answer) if isinstance(answer, dict) else answer
    prompt = _prompt_tokens(body)
    completion = len(content.split())
    return {
        "id": f"chatcmpl-{_digest(body)}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model"),
        "system_fingerprint": "fp_fake_batch",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def anthropic_message(body: dict[str, Any]) -> dict[str, Any]:
    """The Messages API reply the fake returns for ``body`` (normal and batched alike)."""
    choice = body.get("tool_choice") or {}
    tool = None
    if choice.get("type") == "tool":
        tool = next((t for t in body.get("tools", []) if t.get("name") == choice.get("name")), None)
    answer = _answer(body, tool.get("input_schema") if tool else None)
    if tool is not None:
        block = {
            "type": "tool_use",
            "id": f"toolu_{_digest(body)}",
            "name": tool["name"],
            "input": answer,
        }
        out, stop = len(json.dumps(answer).split()), "tool_use"
    else:
        block = {"type": "text", "text": answer}
        out, stop = len(str(answer).split()), "end_turn"
    return {
        "id": f"msg_{_digest(body)}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [block],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": _prompt_tokens(body), "output_tokens": out},
    }


class FakeBatchAPI:
    """Both vendors' batch endpoints (and normal endpoints) on one 127.0.0.1 port.

    ``created`` lists each batch made (vendor, model, id, custom ids); ``log`` every
    (method, path); ``keys`` the credentials each vendor's paths received.
    """

    def __init__(self, *, polls: int = 2, fail: Fail | None = None) -> None:
        self.polls = max(1, polls)
        self.fail = fail or (lambda custom_id, body: False)
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.openai: dict[str, dict[str, Any]] = {}
        self.anthropic: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.log: list[tuple[str, str]] = []
        self.keys: dict[str, set[str]] = {"openai": set(), "anthropic": set()}
        self.sync_calls = 0
        self._count = 0
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeBatchAPI:
        fake = self

        class Handler(_Handler):
            api = fake

        self._server = _HTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBatchAPI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def root(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.root}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.root

    def batches(self, vendor: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.created if vendor in (None, b["vendor"])]

    def _new_id(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count:06d}"

    # -- OpenAI ------------------------------------------------------------------------------

    def upload(self, filename: str, data: bytes, purpose: str) -> dict[str, Any]:
        with self.lock:
            file_id = self._new_id("file-")
            self.files[file_id] = data
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }

    def openai_create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            data = self.files.get(body.get("input_file_id", ""))
            if data is None:
                return 404, _openai_error("No such File object", "invalid_request_error")
            batch_id = self._new_id("batch_")
            lines, errors = _openai_lines(data, body.get("endpoint", ""))
            batch = {
                "id": batch_id,
                "object": "batch",
                "endpoint": body.get("endpoint"),
                "errors": {"object": "list", "data": errors} if errors else None,
                "input_file_id": body["input_file_id"],
                "completion_window": body.get("completion_window"),
                "status": "failed" if errors else "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": int(time.time()),
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
                "_lines": lines,
                "_polls": 0,
            }
            self.openai[batch_id] = batch
            models = sorted({line["body"].get("model") for line in lines})
            self.created.append(
                {
                    "vendor": "openai",
                    "id": batch_id,
                    "model": models[0] if len(models) == 1 else models,
                    "custom_ids": [line["custom_id"] for line in lines],
                }
            )
            return 200, _public(batch)

    def openai_retrieve(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            batch = self.openai.get(batch_id)
            if batch is None:
                return 404, _openai_error(f"No batch {batch_id}", "invalid_request_error")
            if batch["status"] in ("validating", "in_progress", "finalizing"):
                batch["_polls"] += 1
                if batch["_polls"] >= self.polls:
                    self._finish_openai(batch)
                else:
                    batch["status"] = "in_progress"
                    total = batch["request_counts"]["total"]
                    batch["request_counts"]["completed"] = total * batch["_polls"] // self.polls
            return 200, _public(batch)

    def _finish_openai(self, batch: dict[str, Any]) -> None:
        ok, bad = [], []
        for n, line in enumerate(batch["_lines"]):
            cid, body = line["custom_id"], line["body"]
            if self.fail(cid, body):
                bad.append(
                    {
                        "id": f"batch_req_{n}",
                        "custom_id": cid,
                        "response": {
                            "status_code": 400,
                            "request_id": f"req_{n}",
                            "body": _openai_error(
                                "fake: this request was made to fail", "invalid_request_error"
                            ),
                        },
                        "error": None,
                    }
                )
            else:
                ok.append(
                    {
                        "id": f"batch_req_{n}",
                        "custom_id": cid,
                        "response": {
                            "status_code": 200,
                            "request_id": f"req_{n}",
                            "body": openai_completion(body),
                        },
                        "error": None,
                    }
                )
        ok.reverse()  # output order is not input order
        for key, rows in (("output_file_id", ok), ("error_file_id", bad)):
            if rows:
                file_id = self._new_id("file-")
                self.files[file_id] = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
                batch[key] = file_id
        batch["status"] = "completed"
        batch["request_counts"] = {
            "total": len(batch["_lines"]),
            "completed": len(ok),
            "failed": len(bad),
        }

    def openai_cancel(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            batch = self.openai.get(batch_id)
            if batch is None:
                return 404, _openai_error(f"No batch {batch_id}", "invalid_request_error")
            if batch["status"] in ("validating", "in_progress"):
                batch["status"] = "cancelled"
            return 200, _public(batch)

    # -- Anthropic ---------------------------------------------------------------------------

    def anthropic_create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        requests = body.get("requests") or []
        ids = [r.get("custom_id", "") for r in requests]
        bad = next((i for i in ids if not _ANTHROPIC_ID.match(i)), None)
        if not requests or bad is not None or len(set(ids)) != len(ids):
            reason = (
                f"invalid custom_id {bad!r}" if bad is not None else "empty or duplicate custom_id"
            )
            return 400, _anthropic_error("invalid_request_error", reason)
        if any(r.get("params", {}).get("stream") for r in requests):
            return 400, _anthropic_error(
                "invalid_request_error", "stream is not allowed in a batch"
            )
        with self.lock:
            batch_id = self._new_id("msgbatch_")
            batch = {
                "id": batch_id,
                "type": "message_batch",
                "processing_status": "in_progress",
                "request_counts": {
                    "processing": len(requests),
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                },
                "created_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-02T00:00:00Z",
                "ended_at": None,
                "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": None,
                "_requests": requests,
                "_polls": 0,
                "_results": None,
            }
            self.anthropic[batch_id] = batch
            models = sorted({r["params"].get("model") for r in requests})
            self.created.append(
                {
                    "vendor": "anthropic",
                    "id": batch_id,
                    "model": models[0] if len(models) == 1 else models,
                    "custom_ids": ids,
                }
            )
            return 200, _public(batch)

    def anthropic_retrieve(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            batch = self.anthropic.get(batch_id)
            if batch is None:
                return 404, _anthropic_error("not_found_error", f"no batch {batch_id}")
            if batch["processing_status"] == "in_progress":
                batch["_polls"] += 1
                if batch["_polls"] >= self.polls:
                    self._finish_anthropic(batch)
            return 200, _public(batch)

    def _finish_anthropic(self, batch: dict[str, Any]) -> None:
        results = []
        for request in batch["_requests"]:
            cid, params = request["custom_id"], request["params"]
            if self.fail(cid, params):
                error = {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "fake: this request was made to fail",
                    },
                    "request_id": None,
                }
                results.append({"custom_id": cid, "result": {"type": "errored", "error": error}})
            else:
                results.append(
                    {
                        "custom_id": cid,
                        "result": {"type": "succeeded", "message": anthropic_message(params)},
                    }
                )
        results.reverse()
        batch["_results"] = results
        errored = sum(r["result"]["type"] == "errored" for r in results)
        batch["request_counts"] = {
            "processing": 0,
            "succeeded": len(results) - errored,
            "errored": errored,
            "canceled": 0,
            "expired": 0,
        }
        batch["processing_status"] = "ended"
        batch["ended_at"] = "2026-01-01T00:10:00Z"
        batch["results_url"] = f"{FOREIGN_RESULTS_HOST}/v1/messages/batches/{batch['id']}/results"

    def anthropic_results(self, batch_id: str) -> tuple[int, bytes | dict[str, Any]]:
        with self.lock:
            batch = self.anthropic.get(batch_id)
            if batch is None:
                return 404, _anthropic_error("not_found_error", f"no batch {batch_id}")
            if batch["_results"] is None:
                return 400, _anthropic_error("invalid_request_error", "batch has not ended")
            return 200, b"".join(json.dumps(r).encode() + b"\n" for r in batch["_results"])


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _openai_error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _openai_lines(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input file's requests and the validation errors the real API would report."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for n, raw in enumerate(
        data.decode().split("\n")[:-1] if data.endswith(b"\n") else data.decode().split("\n"), 1
    ):
        try:
            line = json.loads(raw)
        except ValueError:
            errors.append(
                {"code": "invalid_json_line", "line": n, "message": "not JSON", "param": None}
            )
            continue
        lines.append(line)
        if line.get("url") != endpoint:
            errors.append(
                {
                    "code": "invalid_url",
                    "line": n,
                    "message": "url differs from the batch endpoint",
                    "param": "url",
                }
            )
        if (line.get("body") or {}).get("stream"):
            errors.append(
                {
                    "code": "invalid_request",
                    "line": n,
                    "message": "stream is not allowed",
                    "param": "body.stream",
                }
            )
    ids = [line.get("custom_id") for line in lines]
    if len(set(ids)) != len(ids):
        errors.append(
            {
                "code": "duplicate_custom_id",
                "line": None,
                "message": "custom_id must be unique",
                "param": None,
            }
        )
    if len({(line.get("body") or {}).get("model") for line in lines}) > 1:
        errors.append(
            {
                "code": "mismatched_model",
                "line": None,
                "message": "one model per batch",
                "param": None,
            }
        )
    return lines, errors


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client hung up
        pass


class _Handler(BaseHTTPRequestHandler):
    api: FakeBatchAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _vendor(self) -> str:
        return "anthropic" if self.path.startswith("/v1/messages") else "openai"

    def _key(self) -> str | None:
        header = self.headers.get("x-api-key") or self.headers.get("Authorization") or ""
        return header.removeprefix("Bearer ").strip() or None

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _admit(self, method: str) -> bool:
        path = self.path.split("?")[0]
        with self.api.lock:
            self.api.log.append((method, path))
            key = self._key()
            if key:
                self.api.keys[self._vendor()].add(key)
        if not self._key():
            self._send(401, _openai_error("no API key", "authentication_error"))
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if not self._admit("GET"):
            return
        api, path = self.api, self.path.split("?")[0]
        if m := re.fullmatch(r"/v1/messages/batches/([\w-]+)/results", path):
            status, payload = api.anthropic_results(m.group(1))
            self._send(
                status, payload, "application/binary" if status == 200 else "application/json"
            )
        elif m := re.fullmatch(r"/v1/messages/batches/([\w-]+)", path):
            self._send(*api.anthropic_retrieve(m.group(1)))
        elif m := re.fullmatch(r"/v1/batches/([\w-]+)", path):
            self._send(*api.openai_retrieve(m.group(1)))
        elif m := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
            data = api.files.get(m.group(1))
            if data is None:
                self._send(404, _openai_error("No such File object", "invalid_request_error"))
            else:
                self._send(200, data, "application/octet-stream")
        else:
            self._send(404, _openai_error(f"no route {path}", "invalid_request_error"))

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        raw = self._body()
        if not self._admit("POST"):
            return
        api, path = self.api, self.path.split("?")[0]
        if path == "/v1/files":
            fields = _multipart(self.headers.get("Content-Type", ""), raw)
            filename, data = fields.get("file", ("", b""))
            self._send(
                200, api.upload(filename, data, fields.get("purpose", ("", b""))[1].decode())
            )
            return
        body = json.loads(raw or b"{}")
        if path == "/v1/batches":
            self._send(*api.openai_create(body))
        elif m := re.fullmatch(r"/v1/batches/([\w-]+)/cancel", path):
            self._send(*api.openai_cancel(m.group(1)))
        elif path == "/v1/messages/batches":
            self._send(*api.anthropic_create(body))
        elif path == "/v1/chat/completions":
            with api.lock:
                api.sync_calls += 1
            self._send(200, openai_completion(body))
        elif path == "/v1/messages":
            with api.lock:
                api.sync_calls += 1
            self._send(200, anthropic_message(body))
        else:
            self._send(404, _openai_error(f"no route {path}", "invalid_request_error"))


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str, bytes]]:
    """name -> (filename, bytes) of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[str(name)] = (part.get_filename() or "", part.get_payload(decode=True) or b"")
    return fields
