"""Batch APIs (``poise run --batch``): a stage round's calls go out as one OpenAI or Anthropic batch.

Both vendors answer batches at a discount, within 24 h instead of seconds. Poise's pipelines
make one call per sample per stage, and with ``--batch`` every sample runs at once, so the
calls of one stage round arrive together. This layer sits *inside* the chat model (its
``_agenerate``, like the micro-batcher of ``hf/``): it builds the exact request body the
provider's LangChain model would have POSTed, parks the call, submits the round as one batch
per (provider, base URL, model), polls it with a progress callback, and answers each call with
the ``ChatResult`` LangChain's own parser makes of the batch's row. So ``ask``,
``ask_structured``, the graphs, the runner and the records do not change: same messages, same
outputs, same usage and response metadata as a normal run.

Enabling it is one explicit call per model handle, :func:`enable_batching`, which returns a
new handle whose chat model batches (the original is left untouched).

**Rounds.** There is no "round" object: a round is the calls that arrive close together. A
batch is submitted once no new call has arrived for ``settle_s`` seconds (2 s by default;
nothing next to a batch's minutes). A sample that reaches a stage late goes in the next batch;
nothing is lost, it only costs one more batch.

**Resume.** Each call has a stable ``custom_id``: its sample, LangGraph node, epoch and a hash
of the request body (so a changed prompt, model or parameter never reuses an old answer). The
run directory's ``batches.json`` (written atomically, right after each batch is created) maps
every ``custom_id`` to its batch id. A rerun after a kill asks for the same calls; those found
in the file are collected from their batch (polled if still pending) instead of submitted
again. A request that errors inside a batch (a ``completed`` OpenAI batch can hold failed
requests; an Anthropic batch ``errored`` / ``expired`` / ``canceled`` rows) is dropped from the
file and raised as :class:`BatchRequestError`, a non-transient error: the retry layer does not
repeat it, the runner records it as that sample's error once, and the rerun submits it anew.
Known gap: a kill in the milliseconds between the provider creating a batch and the file
being written leaves a batch the rerun does not know of (it is submitted again).

**Keys.** Each batch goes through the chat model's own SDK client, so its key goes only to the
base URL that model already uses. Anthropic names an absolute ``results_url``; Poise does not
follow it but reads the results from the same path on the model's own base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import sys
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatResult

from poise.agents.models.handle import ModelHandle
from poise.agents.models.replay import EPOCH_KEY, SAMPLE_ID_KEY
from poise.agents.retry import CallLimits, call_limits, delay_before_retry, is_transient
from poise.errors import PoiseError

STATE_FILE = "batches.json"
STATE_VERSION = 1
# Run metadata the runner sets so that K draws of one sample are K distinct requests.
NODE_KEY = "langgraph_node"  # LangGraph puts the node's name in every nested run's metadata
BATCH_PROVIDERS = ("openai", "anthropic")
DEFAULT_SETTLE_S = 2.0
DEFAULT_POLL_S = 10.0
MAX_POLL_S = 120.0  # back off to this: a batch may take hours, polling it each second is waste
POLL_BACKOFF = 1.5
MAX_POLL_FAILURES = 8  # consecutive transient failures while polling before the calls give up
BATCH_HTTP_TIMEOUT_S = 600.0  # one request of the batch API: a 200 MB upload takes minutes
_CUSTOM_ID = re.compile(r"[^A-Za-z0-9_-]+")


class BatchRequestError(RuntimeError):
    """One request failed inside a batch; the sample records it and a rerun submits it again."""


@dataclass(frozen=True)
class BatchProgress:
    """What a poll saw: passed to the progress callback after every poll."""

    provider: str
    model: str
    batch_id: str
    status: str
    total: int
    done: int  # succeeded so far (OpenAI counts move while running; Anthropic's only at the end)
    failed: int
    elapsed_s: float
    finished: bool

    def line(self) -> str:
        minutes, seconds = divmod(int(self.elapsed_s), 60)
        counts = f"{self.done}/{self.total} done" + (
            f", {self.failed} failed" if self.failed else ""
        )
        return (
            f"batch {self.provider}/{self.model} {self.batch_id}: {self.status}, {counts} "
            f"({minutes}m{seconds:02d}s)"
        )


ProgressCallback = Callable[[BatchProgress], None]
_last_lines: dict[str, str] = {}


def print_progress(progress: BatchProgress) -> None:
    """The default callback: one stderr line per batch whenever its status or counts change."""
    line = progress.line()
    key = progress.batch_id
    shown = line.rsplit(" (", 1)[0]
    if _last_lines.get(key) != shown:
        _last_lines[key] = shown
        print(line, file=sys.stderr, flush=True)


# -- the state file --------------------------------------------------------------------------


class BatchState:
    """``batches.json`` in the run directory: batch ids by ``custom_id``, written atomically.

    One per directory per process (the run lock keeps other processes out of the directory).
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE
        self.batches: dict[str, dict[str, Any]] = {}
        self.requests: dict[str, str] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.batches = dict(data["batches"])
                self.requests = dict(data["requests"])
            except (ValueError, KeyError, TypeError) as exc:
                raise PoiseError(
                    f"{self.path} is not a Poise batch state file ({exc}); remove it to "
                    "submit the pending calls again"
                ) from None

    def batch_of(self, custom_id: str) -> str | None:
        return self.requests.get(custom_id)

    def add(self, batch_id: str, custom_ids: Iterable[str], **info: Any) -> None:
        ids = list(custom_ids)
        self.batches[batch_id] = {**info, "requests": len(ids), "created_at": time.time()}
        for custom_id in ids:
            self.requests[custom_id] = batch_id
        self.save()

    def set_status(self, batch_id: str, status: str) -> None:
        if batch_id in self.batches and self.batches[batch_id].get("status") != status:
            self.batches[batch_id]["status"] = status
            self.save()

    def forget(self, custom_ids: Iterable[str]) -> None:
        """Drop requests whose answer is not usable, so the next run submits them anew."""
        dropped = [c for c in custom_ids if self.requests.pop(c, None) is not None]
        if dropped:
            self.save()

    def save(self) -> None:
        """tmp file, fsync, rename: a kill at any instant leaves the old or the new file."""
        data = {"version": STATE_VERSION, "batches": self.batches, "requests": self.requests}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


_states: dict[Path, BatchState] = {}


def batch_state(directory: Path) -> BatchState:
    """The process's one :class:`BatchState` for ``directory`` (handles of a run share it)."""
    key = Path(directory).resolve()
    if key not in _states:
        key.mkdir(parents=True, exist_ok=True)
        _states[key] = BatchState(key)
    return _states[key]


# -- the two vendors -------------------------------------------------------------------------


@dataclass(frozen=True)
class Poll:
    status: str
    finished: bool
    total: int
    done: int
    failed: int


class Vendor(Protocol):
    name: str
    max_requests: int
    max_bytes: int

    def body(
        self, chat: Any, messages: list[Any], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]: ...
    def client(self, chat: Any) -> Any: ...
    async def submit(self, client: Any, requests: dict[str, dict[str, Any]]) -> str: ...
    async def poll(self, client: Any, batch_id: str) -> Poll: ...
    async def results(self, client: Any, batch_id: str) -> dict[str, Any]: ...
    def chat_result(self, chat: Any, row: Any, kwargs: dict[str, Any]) -> ChatResult: ...


class OpenAIBatches:
    """Files + Batches on ``/v1/chat/completions``: one JSONL file per batch, one model per file."""

    name = "openai"
    max_requests = 50_000
    max_bytes = 190 * 2**20  # the API takes 200 MB; base64 images make lines large
    endpoint = "/v1/chat/completions"

    def body(
        self, chat: Any, messages: list[Any], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        payload = chat._get_request_payload(messages, stop=stop, **kwargs)
        if chat._use_responses_api(payload):
            raise PoiseError(
                f"--batch sends Chat Completions requests; openai/{chat.model_name} is set to "
                "use the Responses API: run it without --batch"
            )
        payload.pop("stream", None)  # a batch line must not stream
        payload.pop("stream_options", None)
        return payload

    def client(self, chat: Any) -> Any:
        import openai

        return _own_pool(chat.root_async_client, openai.DefaultAsyncHttpxClient())

    async def submit(self, client: Any, requests: dict[str, dict[str, Any]]) -> str:
        lines = b"".join(
            json.dumps(
                {"custom_id": cid, "method": "POST", "url": self.endpoint, "body": body},
                separators=(",", ":"),
            ).encode()
            + b"\n"
            for cid, body in requests.items()
        )
        uploaded = await client.files.create(
            file=("poise-batch.jsonl", lines, "application/jsonl"), purpose="batch"
        )
        batch = await client.batches.create(
            input_file_id=uploaded.id,
            endpoint=self.endpoint,
            completion_window="24h",
            metadata={"created_by": "poise"},
        )
        return batch.id

    async def poll(self, client: Any, batch_id: str) -> Poll:
        batch = await client.batches.retrieve(batch_id)
        counts = batch.request_counts
        return Poll(
            status=batch.status,
            finished=batch.status in ("completed", "failed", "expired", "cancelled"),
            total=counts.total if counts else 0,
            done=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
        )

    async def results(self, client: Any, batch_id: str) -> dict[str, Any]:
        """custom_id -> the chat.completion body, or the BatchRequestError of that request."""
        batch = await client.batches.retrieve(batch_id)
        if batch.status == "failed":  # validation failed: nothing ran
            errors = [e.message for e in (batch.errors.data if batch.errors else []) if e.message]
            reason = errors[0] if errors else "the batch failed validation"
            raise BatchRequestError(f"batch {batch_id} failed: {reason}")
        rows: dict[str, Any] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await client.files.content(file_id)
            for raw in content.text.splitlines():
                if raw.strip():
                    row = json.loads(raw)
                    rows[row["custom_id"]] = _openai_row(row)
        return rows

    def chat_result(self, chat: Any, row: Any, kwargs: dict[str, Any]) -> ChatResult:
        """What ChatOpenAI makes of the same reply: the SDK's typed completion, then its parser
        (a JSON-schema request comes back as a ParsedChatCompletion, as from ``.parse``)."""
        from openai.types.chat import ChatCompletion, ParsedChatCompletion

        if "response_format" in kwargs:
            typed: Any = ParsedChatCompletion[object].model_validate(
                {
                    **row,
                    "choices": [
                        {**c, "message": {**c["message"], "parsed": None}} for c in row["choices"]
                    ],
                }
            )
        else:
            typed = ChatCompletion.model_validate(row)
        return chat._create_chat_result(typed, {})


def _own_pool(client: Any, http_client: Any) -> Any:
    """The model's SDK client (same key, base URL, headers) with a connection pool of its own
    and a timeout for uploads of many images. LangChain may share one pool per base URL, and a
    pool belongs to the event loop that opened it: a second run in a new loop would fail."""
    return client.copy(http_client=http_client, timeout=BATCH_HTTP_TIMEOUT_S, max_retries=0)


def _openai_row(row: dict[str, Any]) -> Any:
    error = row.get("error")
    response = row.get("response") or {}
    if error:
        return BatchRequestError(
            f"batch request failed: {error.get('code')}: {error.get('message')}"
        )
    body = response.get("body") or {}
    if response.get("status_code") != 200:
        detail = body.get("error", {}) if isinstance(body, dict) else {}
        return BatchRequestError(
            f"batch request failed: HTTP {response.get('status_code')} "
            f"{detail.get('type') or ''}: {detail.get('message') or body}"
        )
    return body


class AnthropicBatches:
    """Message Batches: the requests go in the create call; results are JSONL."""

    name = "anthropic"
    max_requests = 100_000
    max_bytes = 250 * 2**20  # the API takes 256 MB

    def body(
        self, chat: Any, messages: list[Any], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        params = chat._get_request_payload(messages, stop=stop, **kwargs)
        if params.get("betas"):
            raise PoiseError(
                f"--batch does not send beta features; anthropic/{chat.model} uses "
                f"{params['betas']}: run it without --batch"
            )
        params.pop("betas", None)
        # The SDK merges extra_body into the JSON it sends (temperature travels there with
        # anthropic>=1); a batch's params are that JSON.
        params.update(params.pop("extra_body", None) or {})
        params.pop("stream", None)
        params.pop("ls_structured_output_format", None)
        return params

    def client(self, chat: Any) -> Any:
        import anthropic

        return _own_pool(chat._async_client, anthropic.DefaultAsyncHttpxClient())

    async def submit(self, client: Any, requests: dict[str, dict[str, Any]]) -> str:
        batch = await client.messages.batches.create(
            requests=[{"custom_id": cid, "params": params} for cid, params in requests.items()]
        )
        return batch.id

    async def poll(self, client: Any, batch_id: str) -> Poll:
        batch = await client.messages.batches.retrieve(batch_id)
        c = batch.request_counts
        return Poll(
            status=batch.processing_status,
            finished=batch.processing_status == "ended",
            total=c.processing + c.succeeded + c.errored + c.canceled + c.expired,
            done=c.succeeded,
            failed=c.errored + c.canceled + c.expired,
        )

    async def results(self, client: Any, batch_id: str) -> dict[str, Any]:
        """Read from the client's own base URL, not the absolute ``results_url`` the API names
        (which may be another host: the key must go only where the user pointed the model)."""
        from anthropic.types.messages import MessageBatchIndividualResponse

        text = await client.get(
            f"/v1/messages/batches/{batch_id}/results",
            cast_to=str,
            options={"headers": {"Accept": "application/binary"}},
        )
        rows: dict[str, Any] = {}
        for raw in text.splitlines():
            if not raw.strip():
                continue
            entry = MessageBatchIndividualResponse.model_validate(json.loads(raw))
            result = entry.result
            if result.type == "succeeded":
                rows[entry.custom_id] = result.message
            elif result.type == "errored":
                error = result.error.error
                rows[entry.custom_id] = BatchRequestError(
                    f"batch request failed: {error.type}: {error.message}"
                )
            else:
                rows[entry.custom_id] = BatchRequestError(f"batch request {result.type}")
        return rows

    def chat_result(self, chat: Any, row: Any, kwargs: dict[str, Any]) -> ChatResult:
        return chat._format_output(row, generation_info={}, **kwargs)


VENDORS: dict[str, Vendor] = {"openai": OpenAIBatches(), "anthropic": AnthropicBatches()}


# -- collecting the calls of a round ---------------------------------------------------------


def custom_id(metadata: dict[str, Any] | None, body: dict[str, Any]) -> str:
    """Stable across runs for the same call; fits both vendors (``[A-Za-z0-9_-]{1,64}``)."""
    digest = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()[:16]
    metadata = metadata or {}
    sample = metadata.get(SAMPLE_ID_KEY)
    if sample is None:
        return f"call-{digest}"
    node = _CUSTOM_ID.sub("_", str(metadata.get(NODE_KEY) or "call"))[:16]
    safe = _CUSTOM_ID.sub("_", str(sample))
    if len(safe) > 20:  # long ids: keep a readable head, stay unique through the hash
        safe = safe[:11] + hashlib.sha256(str(sample).encode()).hexdigest()[:8]
    epoch = metadata.get(EPOCH_KEY) or 0
    return f"s{safe}-{node}-e{int(epoch)}-{digest}"


@dataclass
class _Collector:
    """The pending calls and the batches of one (provider, base URL, model) in one event loop."""

    vendor: Vendor
    client: Any
    model: str
    state: BatchState
    progress: ProgressCallback | None
    settle_s: float
    poll_s: float
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    futures: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # batch id -> downloaded rows
    watchers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    submitted: int = 0  # batches this process created (tests and the summary line read it)

    async def request(self, cid: str, body: dict[str, Any]) -> Any:
        """The row answering ``body``: from a batch already made for it, else a new one."""
        loop = asyncio.get_running_loop()
        future = self.futures.get(cid)
        if future is None:  # (an identical call already waiting shares its answer)
            future = self.futures[cid] = loop.create_future()
            batch_id = self.state.batch_of(cid)
            if batch_id is not None:
                self._collect(batch_id)
            else:
                self.pending[cid] = body
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = loop.call_later(self.settle_s, self._flush_soon)
        # shield: one caller's time limit or cancellation must not cancel the others' answer
        return await asyncio.shield(future)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _flush_soon(self) -> None:
        self.timer = None
        batch, self.pending = self.pending, {}
        if batch:
            self._spawn(self._submit_all(batch))

    async def _submit_all(self, batch: dict[str, dict[str, Any]]) -> None:
        for chunk in _chunks(batch, self.vendor.max_requests, self.vendor.max_bytes):
            try:
                batch_id = await _with_retries(lambda c=chunk: self.vendor.submit(self.client, c))
            except Exception as exc:  # nothing was created: the calls fail, a rerun resubmits
                self._fail(chunk, exc)
                continue
            self.state.add(
                batch_id,
                chunk,
                provider=self.vendor.name,
                model=self.model,
                status="submitted",
            )
            self.submitted += 1
            self._collect(batch_id)

    def _collect(self, batch_id: str) -> None:
        if batch_id in self.rows:
            self._deliver(batch_id)
        elif batch_id not in self.watchers or self.watchers[batch_id].done():
            self.watchers[batch_id] = self._spawn(self._watch(batch_id))

    async def _watch(self, batch_id: str) -> None:
        started = self.state.batches.get(batch_id, {}).get("created_at") or time.time()
        wait = self.poll_s
        failures = 0
        while True:
            try:
                poll = await self.vendor.poll(self.client, batch_id)
                failures = 0
            except Exception as exc:
                failures += 1
                if _not_found(exc):  # gone (results expire after ~30 days): submit again
                    self._give_up(batch_id, exc, forget=True)
                    return
                if not is_transient(exc) or failures >= MAX_POLL_FAILURES:
                    self._give_up(batch_id, exc, forget=False)  # the id stays: rerun collects
                    return
                await asyncio.sleep(delay_before_retry(exc, failures - 1))
                continue
            if self.progress is not None:
                self.progress(
                    BatchProgress(
                        provider=self.vendor.name,
                        model=self.model,
                        batch_id=batch_id,
                        status=poll.status,
                        total=poll.total,
                        done=poll.done,
                        failed=poll.failed,
                        elapsed_s=max(0.0, time.time() - started),
                        finished=poll.finished,
                    )
                )
            if poll.finished:
                break
            await asyncio.sleep(wait)
            wait = min(wait * POLL_BACKOFF, max(MAX_POLL_S, self.poll_s))
        try:
            rows = await _with_retries(lambda: self.vendor.results(self.client, batch_id))
        except BatchRequestError as exc:  # the whole batch failed: every request anew
            self._give_up(batch_id, exc, forget=True)
            return
        except Exception as exc:
            self._give_up(batch_id, exc, forget=False)
            return
        self.state.set_status(batch_id, poll.status)
        self.rows[batch_id] = rows
        self._deliver(batch_id)

    def _deliver(self, batch_id: str) -> None:
        rows = self.rows[batch_id]
        mine = [c for c, f in self.futures.items() if self.state.batch_of(c) == batch_id]
        self.state.forget(
            c for c in mine if _is_error(rows.get(c))
        )  # errored, expired or missing: the rerun submits them anew
        for cid in mine:
            future = self.futures.pop(cid)
            if future.done():
                continue
            row = rows.get(cid)
            if row is None:
                future.set_exception(
                    BatchRequestError(f"batch {batch_id} returned no result for {cid}")
                )
            elif isinstance(row, BaseException):
                future.set_exception(row)
            else:
                future.set_result(row)

    def _give_up(self, batch_id: str, exc: BaseException, *, forget: bool) -> None:
        mine = [c for c in self.futures if self.state.batch_of(c) == batch_id]
        if forget:
            self.state.forget(mine)
        self._fail(mine, exc)

    def _fail(self, cids: Iterable[str], exc: BaseException) -> None:
        for cid in list(cids):
            future = self.futures.pop(cid, None)
            if future is not None and not future.done():
                future.set_exception(exc)


def _is_error(row: Any) -> bool:
    return row is None or isinstance(row, BaseException)


def _not_found(exc: BaseException) -> bool:
    return getattr(exc, "status_code", None) == 404


async def _with_retries(attempt: Callable[[], Any]) -> Any:
    """Submitting and downloading: transient failures (429, 5xx, drops) are tried again."""
    retries = max(call_limits().max_retries, 3)
    for retry in range(retries + 1):
        try:
            return await attempt()
        except Exception as exc:
            if retry >= retries or not is_transient(exc):
                raise
            await asyncio.sleep(delay_before_retry(exc, retry))
    raise AssertionError("unreachable")


def _chunks(
    requests: dict[str, dict[str, Any]], max_requests: int, max_bytes: int
) -> list[dict[str, dict[str, Any]]]:
    """Split a round so each batch stays within the vendor's request and size limits."""
    chunks: list[dict[str, dict[str, Any]]] = [{}]
    size = 0
    for cid, body in requests.items():
        line = len(json.dumps(body, default=str)) + len(cid) + 100
        if chunks[-1] and (len(chunks[-1]) >= max_requests or size + line > max_bytes):
            chunks.append({})
            size = 0
        chunks[-1][cid] = body
        size += line
    return chunks


_collectors: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Collector]
] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Layer:
    """One :func:`enable_batching` call's settings, shared by the calls of its chat model."""

    vendor: Vendor
    state: BatchState
    progress: ProgressCallback | None
    settle_s: float
    poll_s: float

    def collector(self, chat: Any) -> _Collector:
        loop = asyncio.get_running_loop()
        sdk = chat.root_async_client if self.vendor.name == "openai" else chat._async_client
        model = getattr(chat, "model_name", None) or getattr(chat, "model", "")
        key = (self.vendor.name, str(sdk.base_url), model, id(self.state))
        per_loop = _collectors.setdefault(loop, {})
        if key not in per_loop:
            per_loop[key] = _Collector(
                vendor=self.vendor,
                client=self.vendor.client(chat),
                model=model,
                state=self.state,
                progress=self.progress,
                settle_s=self.settle_s,
                poll_s=self.poll_s,
            )
        return per_loop[key]

    async def generate(
        self,
        chat: Any,
        messages: list[Any],
        stop: list[str] | None,
        run_manager: Any,
        kwargs: dict[str, Any],
    ) -> ChatResult:
        body = self.vendor.body(chat, messages, stop, kwargs)
        cid = custom_id(getattr(run_manager, "metadata", None), body)
        row = await self.collector(chat).request(cid, body)
        return self.vendor.chat_result(chat, row, kwargs)


def _batched_chat(chat: BaseChatModel, layer: _Layer) -> BaseChatModel:
    """A copy of ``chat`` whose ``_agenerate`` goes through ``layer`` (streaming off: a batch
    answers whole). The copy keeps every field, client and private attribute of the original."""
    base = type(chat)

    async def _agenerate(
        self: Any,
        messages: list[Any],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await layer.generate(self, messages, stop, run_manager, kwargs)

    cls = type(
        f"Batched{base.__name__}", (base,), {"_agenerate": _agenerate, "__module__": __name__}
    )
    copy = chat.model_copy(update={"disable_streaming": True})
    object.__setattr__(copy, "__class__", cls)
    return copy


def enable_batching(
    target: ModelHandle | BaseChatModel,
    state_dir: Path,
    progress: ProgressCallback | None = print_progress,
    *,
    settle_s: float = DEFAULT_SETTLE_S,
    poll_s: float = DEFAULT_POLL_S,
) -> Any:
    """``target`` answering through its provider's batch API, resumable from ``state_dir``.

    Returns a new :class:`ModelHandle` (or chat model) and leaves ``target`` as it was. Models
    of other providers come back unchanged (a ``replay/`` or ``hf/`` stage model in a
    ``--batch`` run keeps answering directly). ``state_dir`` is the run directory, where
    ``batches.json`` lives; ``progress`` is called after every poll.
    """
    if isinstance(target, ModelHandle):
        if target.provider not in BATCH_PROVIDERS:
            return target
        chat = _wrap(target.chat, target.provider, state_dir, progress, settle_s, poll_s)
        return ModelHandle(name=target.name, chat=chat, params=dict(target.params))
    provider = _provider_of(target)
    if provider is None:
        return target
    return _wrap(target, provider, state_dir, progress, settle_s, poll_s)


def _wrap(
    chat: BaseChatModel,
    provider: str,
    state_dir: Path,
    progress: ProgressCallback | None,
    settle_s: float,
    poll_s: float,
) -> BaseChatModel:
    layer = _Layer(
        vendor=VENDORS[provider],
        state=batch_state(state_dir),
        progress=progress,
        settle_s=settle_s,
        poll_s=poll_s,
    )
    return _batched_chat(chat, layer)


def _provider_of(chat: BaseChatModel) -> str | None:
    llm_type = getattr(chat, "_llm_type", "")
    if llm_type == "openai-chat":
        return "openai"
    if llm_type == "anthropic-chat":
        return "anthropic"
    return None


def is_batched(chat: Any) -> bool:
    """True for a chat model made by :func:`enable_batching`: its calls wait for a batch, so
    the per-attempt ``--timeout`` must not cut them off."""
    return type(chat).__module__ == __name__


# A batched call waits for its batch, which the vendors finish within 24 h (then "expired").
BATCH_WAIT_S = 25 * 3600.0


def batch_call_limits() -> CallLimits:
    """The retry layer's limits for a batched call: ``--timeout`` bounds one HTTP request,
    not a batch's hours, so the wait is bounded by the batch window instead. The batch
    requests themselves (upload, create, poll, download) keep their own time limit and retries."""
    return CallLimits(timeout_s=BATCH_WAIT_S, max_retries=call_limits().max_retries)


def submitted_batches() -> int:
    """Batches this process created in the running event loop (for a summary line and tests)."""
    with contextlib.suppress(RuntimeError):
        loop = asyncio.get_running_loop()
        return sum(c.submitted for c in _collectors.get(loop, {}).values())
    return 0
