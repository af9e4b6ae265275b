"""``hf/<repo-or-path>``: a local transformers vision-language model as a LangChain chat model.

For users with one GPU and no inference server: the model runs in-process. The rest of Poise
speaks OpenAI-style messages (text parts and ``image_url`` data URLs), so this module
translates them into the processor's chat format and back into an :class:`AIMessage` with
token usage, exactly like the API providers return.

The runner calls one model from many samples concurrently. Calling ``generate`` once per
sample would leave the GPU mostly idle, so concurrent ``ainvoke`` calls are gathered by a
small micro-batcher: requests wait a few milliseconds (or until ``max_batch_size`` is
reached), run as one left-padded ``generate`` in a worker thread (the event loop keeps
serving other samples meanwhile), and each caller gets back its own row.

torch and transformers are imported only when a model is built, so ``poise --help`` and
API-only runs never pay for them.
"""

from __future__ import annotations  # noqa: I001 (ruff misreads poise.agents as third-party)

import asyncio
import base64
import contextlib
import io
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

from poise.extras import require
from poise.errors import PoiseError

if TYPE_CHECKING:  # only for annotations; importing PIL/torch at runtime is deferred
    from PIL.Image import Image

log = logging.getLogger(__name__)
DEFAULT_MAX_NEW_TOKENS = 512  # new tokens per answer unless --model-param max_tokens

DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_BATCH_WAIT_MS = 5.0
FALLBACK_IMAGE_TOKEN = "<image>"

# Factory parameters consumed while loading; everything else must be a model field.
_LOAD_PARAMS = {"device_map", "dtype", "trust_remote_code", "revision", "attn_implementation"}
# Per-call kwargs (``model.bind(...)`` / ``invoke(..., max_new_tokens=...)``) we honour.
_CALL_PARAMS = {"max_new_tokens", "max_tokens", "temperature", "top_p"}


# --------------------------------------------------------------------------------------
# Message conversion (pure Python, runs before any tensor work)
# --------------------------------------------------------------------------------------


@dataclass
class _Request:
    """One caller's prompt, ready for the processor, plus its generation settings."""

    prompt: str
    images: list[Image]
    max_new_tokens: int
    temperature: float
    top_p: float | None
    stop: list[str] = field(default_factory=list)

    def settings(self) -> tuple[int, float, float | None]:
        """Requests can share one ``generate`` only when these agree."""
        return (self.max_new_tokens, self.temperature, self.top_p)


def decode_image(url: str) -> Image:
    """A data URL (what Poise produces) or a local file path -> an RGB PIL image.

    Remote http(s) URLs are refused on purpose: a local model should not silently fetch
    from the network, and the rest of Poise always sends data URLs.
    """
    from PIL import Image as PILImage

    try:
        if url.startswith("data:"):
            header, sep, payload = url.partition(",")
            if not sep:
                raise ValueError("data URL without a comma")
            raw = base64.b64decode(payload) if ";base64" in header else payload.encode()
            image = PILImage.open(io.BytesIO(raw))
        elif url.startswith(("http://", "https://")):
            raise PoiseError(
                f"hf models take images as data URLs or local files, not remote URLs ({url[:80]})"
            )
        else:
            image = PILImage.open(Path(url.removeprefix("file://")).expanduser())
        return image.convert("RGB")
    except PoiseError:
        raise
    except Exception as exc:  # PIL raises several types; the user needs one line
        raise PoiseError(f"cannot decode image for hf model ({url[:60]}...): {exc}") from None


def _image_url_of(part: dict[str, Any]) -> str | None:
    """The image in a content part, in any of the formats LangChain users send."""
    kind = part.get("type")
    if kind == "image_url":  # OpenAI: {"image_url": {"url": ...}} or {"image_url": "..."}
        inner = part.get("image_url")
        return inner.get("url") if isinstance(inner, dict) else inner
    if kind == "image":
        source = part.get("source")
        if isinstance(source, dict) and source.get("type") == "base64":  # Anthropic
            return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
        if part.get("base64") or part.get("data"):  # LangChain standard content block
            mime = part.get("mime_type", "image/png")
            return f"data:{mime};base64,{part.get('base64') or part.get('data')}"
        return part.get("url") or part.get("path")
    return None


def _role_of(message: BaseMessage) -> str:
    return {"system": "system", "ai": "assistant", "human": "user"}.get(message.type, "user")


def to_conversation(messages: Sequence[BaseMessage]) -> tuple[list[dict[str, Any]], list[Image]]:
    """LangChain messages -> the processor chat format and the images in prompt order.

    Each image becomes a ``{"type": "image"}`` placeholder; the images themselves are passed
    to the processor separately, in the order their placeholders appear.
    """
    conversation: list[dict[str, Any]] = []
    images: list[Image] = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        content = message.content
        if isinstance(content, str):
            parts.append({"type": "text", "text": content})
        else:
            for part in content:
                if isinstance(part, str):
                    parts.append({"type": "text", "text": part})
                    continue
                url = _image_url_of(part)
                if url is not None:
                    images.append(decode_image(url))
                    parts.append({"type": "image"})
                elif part.get("type") == "text":
                    parts.append({"type": "text", "text": part.get("text", "")})
        conversation.append({"role": _role_of(message), "content": parts})
    return conversation, images


def _text(parts: list[dict[str, Any]]) -> str:
    return " ".join(p["text"] for p in parts if p["type"] == "text" and p["text"])


def _fold_system(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Move system text into the first user turn, for templates that reject a system role."""
    system = [_text(turn["content"]) for turn in conversation if turn["role"] == "system"]
    rest = [dict(turn) for turn in conversation if turn["role"] != "system"]
    if system:
        for turn in rest:
            if turn["role"] == "user":
                turn["content"] = [{"type": "text", "text": "\n\n".join(system)}, *turn["content"]]
                break
        else:
            rest.insert(
                0, {"role": "user", "content": [{"type": "text", "text": "\n\n".join(system)}]}
            )
    return rest


def plain_prompt(conversation: list[dict[str, Any]], image_token: str) -> str:
    """The LLaVA-1.5 style prompt, for processors saved without a chat template."""
    lines: list[str] = []
    for turn in conversation:
        text = _text(turn["content"])
        n_images = sum(p["type"] == "image" for p in turn["content"])
        if turn["role"] == "system":
            lines.append(text)
        elif turn["role"] == "user":
            lines.append("USER: " + f"{image_token}\n" * n_images + text)
        else:
            lines.append(f"ASSISTANT: {text}")
    return "\n".join(lines) + "\nASSISTANT:"


def _truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# --------------------------------------------------------------------------------------
# The micro-batcher (one per event loop: asyncio futures cannot cross loops)
# --------------------------------------------------------------------------------------


@dataclass
class _Pending:
    request: _Request
    future: asyncio.Future[ChatResult]
    enqueued: float


class _MicroBatcher:
    """Collects concurrent requests and runs them as batches, one batch at a time.

    There is no long-lived worker: the first request starts a drain task that runs until
    the queue is empty, so nothing lingers when the event loop closes. Requests arriving
    while a batch is generating queue up and form the next batch.
    """

    def __init__(
        self,
        run: Callable[[list[_Request]], list[ChatResult | BaseException]],
        max_batch_size: int,
        wait_s: float,
    ) -> None:
        self.run = run
        self.max_batch_size = max(1, max_batch_size)
        self.wait_s = max(0.0, wait_s)
        self.pending: list[_Pending] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def submit(self, request: _Request) -> ChatResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ChatResult] = loop.create_future()
        self.pending.append(_Pending(request, future, loop.time()))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._drain())
        if len(self.pending) >= self.max_batch_size:
            self.wake.set()
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Pending] = []
        try:
            while self.pending:
                remaining = self.pending[0].enqueued + self.wait_s - loop.time()
                if len(self.pending) < self.max_batch_size and remaining > 0:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), remaining)
                batch = self.pending[: self.max_batch_size]
                del self.pending[: self.max_batch_size]
                batch = [p for p in batch if not p.future.done()]  # callers that gave up
                if not batch:
                    continue
                try:
                    results = await asyncio.to_thread(self.run, [p.request for p in batch])
                except Exception as exc:  # run() reports per-request errors; this is a bug
                    results = [exc] * len(batch)
                for pending, result in zip(batch, results, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(result, BaseException):
                        pending.future.set_exception(result)
                    else:
                        pending.future.set_result(result)
                batch = []
        except asyncio.CancelledError:  # the loop is shutting down: do not strand callers
            for pending in [*batch, *self.pending]:
                pending.future.cancel()
            self.pending.clear()
            raise


# --------------------------------------------------------------------------------------
# The chat model
# --------------------------------------------------------------------------------------


class HFVisionChatModel(BaseChatModel):
    """A transformers image-text-to-text model behind the LangChain chat-model interface.

    Build it with :meth:`load` (``from_pretrained``, what ``hf/<repo-or-path>`` does) or
    :meth:`from_model` (an already-built model and processor, e.g. a tiny test model).
    Greedy decoding by default so that runs are reproducible, like temperature 0 for the
    API providers.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model_name: str = "hf"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float | None = None
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS

    _model: Any = PrivateAttr(default=None)
    _processor: Any = PrivateAttr(default=None)
    # One generate at a time per model: a single GPU gains nothing from overlapping batches.
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _MicroBatcher] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def from_model(cls, model: Any, processor: Any, **fields: Any) -> HFVisionChatModel:
        """Wrap an already-built model and processor (no download, no device move)."""
        chat = cls(**fields)
        chat._model = model.eval()
        chat._processor = processor
        tokenizer = chat._tokenizer
        tokenizer.padding_side = "left"  # generation continues from the right edge
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return chat

    @classmethod
    def load(
        cls,
        repo_or_path: str,
        *,
        device_map: Any = None,
        dtype: Any = None,
        trust_remote_code: bool = False,
        **load_kwargs: Any,
    ) -> HFVisionChatModel:
        """``from_pretrained`` the processor and model; wrap failures in one-line errors.

        ``fields`` for the chat model (max_new_tokens, ...) go in ``load_kwargs`` too; the
        rest (revision, attn_implementation) pass to ``from_pretrained``.
        """
        fields = {k: load_kwargs.pop(k) for k in list(load_kwargs) if k in cls.model_fields}
        fields.setdefault("model_name", repo_or_path)
        source = _resolve_source(repo_or_path)

        torch = require("torch", "hf", "hf/ models")
        transformers = require("transformers", "hf", "hf/ models")

        device = "cuda" if torch.cuda.is_available() else "cpu"
        common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if "revision" in load_kwargs:
            common["revision"] = load_kwargs.pop("revision")
        try:
            processor = transformers.AutoProcessor.from_pretrained(source, **common)
        except Exception as exc:
            raise _load_error(repo_or_path, exc) from None

        model_kwargs = dict(common, dtype=_resolve_dtype(dtype, device), **load_kwargs)
        if device_map is not None:
            model_kwargs["device_map"] = device_map
        auto_classes = [transformers.AutoModelForImageTextToText]
        legacy = getattr(transformers, "AutoModelForVision2Seq", None)  # gone in transformers 5
        if legacy is not None:
            auto_classes.append(legacy)
        first_error: Exception | None = None
        model = None
        for auto_class in auto_classes:
            try:
                model = auto_class.from_pretrained(source, **model_kwargs)
                break
            except Exception as exc:
                first_error = first_error or exc
        if model is None:
            assert first_error is not None
            raise _load_error(repo_or_path, first_error) from None
        if device_map is None:
            model = model.to(device)
        return cls.from_model(model, processor, **fields)

    # ---- LangChain interface -----------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "poise-hf"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = self._run_batch([self._prepare(messages, stop, kwargs)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Image decoding can take milliseconds per image: keep it off the event loop too.
        request = await asyncio.to_thread(self._prepare, messages, stop, kwargs)
        return await self._batcher().submit(request)

    # ---- internals ---------------------------------------------------------------------

    @property
    def _tokenizer(self) -> Any:
        return getattr(self._processor, "tokenizer", self._processor)

    def _batcher(self) -> _MicroBatcher:
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = _MicroBatcher(self._run_batch, self.max_batch_size, self.batch_wait_ms / 1000)
            self._batchers[loop] = batcher
        return batcher

    def _prepare(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Request:
        if self._model is None:
            raise PoiseError("HFVisionChatModel has no model: build it with load() or from_model()")
        unknown = set(kwargs) - _CALL_PARAMS
        if unknown:
            raise PoiseError(
                f"hf models do not accept {', '.join(sorted(unknown))}; "
                f"per-call options: {', '.join(sorted(_CALL_PARAMS))}"
            )
        conversation, images = to_conversation(messages)
        max_new = kwargs.get("max_new_tokens", kwargs.get("max_tokens", self.max_new_tokens))
        return _Request(
            prompt=self._render(conversation),
            images=images,
            max_new_tokens=int(max_new),
            temperature=float(kwargs.get("temperature", self.temperature) or 0.0),
            top_p=kwargs.get("top_p", self.top_p),
            stop=list(stop or []),
        )

    def _render(self, conversation: list[dict[str, Any]]) -> str:
        processor = self._processor
        if not getattr(processor, "chat_template", None):
            token = getattr(processor, "image_token", None) or FALLBACK_IMAGE_TOKEN
            return plain_prompt(conversation, token)
        try:
            return processor.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=False
            )
        except Exception:
            if not any(turn["role"] == "system" for turn in conversation):
                raise
            # Some templates (Gemma, Mistral) reject a system role: fold it into the user turn.
            return processor.apply_chat_template(
                _fold_system(conversation), add_generation_prompt=True, tokenize=False
            )

    def _run_batch(self, requests: list[_Request]) -> list[ChatResult | BaseException]:
        """Run requests as few ``generate`` calls as their settings allow; errors per request."""
        results: list[ChatResult | BaseException | None] = [None] * len(requests)
        groups: dict[tuple[int, float, float | None], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.settings(), []).append(index)
        for indices in groups.values():
            try:
                outputs = self._generate_group([requests[i] for i in indices])
            except Exception as exc:
                outputs = [exc] * len(indices)
            for i, output in zip(indices, outputs, strict=True):
                results[i] = output
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _encode(self, requests: list[_Request]) -> Any:
        texts = [r.prompt for r in requests]
        flat = [image for r in requests for image in r.images]
        if not flat:
            return self._processor(text=texts, padding=True, return_tensors="pt")
        try:  # most processors (LLaVA, Qwen2-VL, SmolVLM) take a flat list in prompt order
            return self._processor(text=texts, images=flat, padding=True, return_tensors="pt")
        except Exception as flat_error:
            nested = [r.images for r in requests]  # e.g. Mllama wants one list per prompt
            try:
                return self._processor(text=texts, images=nested, padding=True, return_tensors="pt")
            except Exception:
                raise flat_error from None

    def _generate_group(self, requests: list[_Request]) -> list[ChatResult]:
        import torch

        model, tokenizer = self._model, self._tokenizer
        settings = requests[0]
        generate_kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if settings.temperature > 0:
            generate_kwargs.update(do_sample=True, temperature=settings.temperature)
            if settings.top_p is not None:
                generate_kwargs["top_p"] = settings.top_p
        else:
            generate_kwargs["do_sample"] = False

        with self._lock:
            started = time.perf_counter()
            inputs = _to_device(self._encode(requests), model)
            with torch.inference_mode():
                output = model.generate(**inputs, **generate_kwargs)
            elapsed = time.perf_counter() - started

        prompt_length = inputs["input_ids"].shape[1]
        attention = inputs.get("attention_mask")
        eos_ids = _eos_ids(model, tokenizer)
        results = []
        for row, request in enumerate(requests):
            generated = output[row, prompt_length:].tolist()
            stop_at = next((i for i, t in enumerate(generated) if t in eos_ids), None)
            n_out = len(generated) if stop_at is None else stop_at + 1
            text = tokenizer.decode(generated[:n_out], skip_special_tokens=True).strip()
            text, hit_stop = _truncate_at_stop(text, request.stop)
            n_in = int(attention[row].sum()) if attention is not None else prompt_length
            finish = "stop" if stop_at is not None or hit_stop else "length"
            message = AIMessage(
                content=text,
                usage_metadata={
                    "input_tokens": n_in,
                    "output_tokens": n_out,
                    "total_tokens": n_in + n_out,
                },
                response_metadata={
                    "model_name": self.model_name,
                    "model_provider": "hf",
                    "finish_reason": finish,
                    "batch_size": len(requests),
                    "batch_latency_s": round(elapsed, 4),
                },
            )
            results.append(ChatResult(generations=[ChatGeneration(message=message)]))
        return results


def _to_device(inputs: Any, model: Any) -> Any:
    """Move inputs to the model; cast pixel values to its dtype (ids stay integers)."""
    try:
        return inputs.to(model.device, dtype=model.dtype)  # BatchFeature casts floats only
    except TypeError:  # a plain BatchEncoding (text-only) takes a device alone
        return inputs.to(model.device)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or (len(name) > 1 and name[1] == ":")


def _resolve_source(repo_or_path: str) -> str:
    """A local path if it exists; a path-looking name that does not exist fails here, fast."""
    path = Path(repo_or_path).expanduser()
    if path.exists():
        return str(path)
    if _looks_local(repo_or_path):
        raise _load_error(repo_or_path, FileNotFoundError(f"no such directory {path}"))
    return repo_or_path


def _resolve_dtype(dtype: Any, device: str) -> Any:
    """bf16 (or fp16) on a GPU to fit in memory; fp32 on CPU, where half precision is slow."""
    import torch

    if dtype is None:
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, str) and dtype != "auto":
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise PoiseError(
                f"unknown dtype {dtype!r} for hf model; try bfloat16, float16, float32"
            )
        return resolved
    return dtype


def _load_error(name: str, exc: BaseException) -> PoiseError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return PoiseError(
        f"cannot load hf model {name}: {reason}; pass a local path or check HF_TOKEN / network"
    )


def make_hf(model: str, *, base_url: str | None = None, **params: Any) -> BaseChatModel:
    """Load ``model`` (a hub repo id or a local directory) in this process."""
    if base_url:
        log.warning("hf/%s runs in-process; ignoring base_url %s", model, base_url)
    params = dict(params)
    if "torch_dtype" in params:  # the transformers 4 name
        params.setdefault("dtype", params.pop("torch_dtype"))
    if "max_tokens" in params:  # the name the API providers use
        params.setdefault("max_new_tokens", params.pop("max_tokens"))
    known = _LOAD_PARAMS | set(HFVisionChatModel.model_fields)
    unknown = set(params) - known
    if unknown:
        raise PoiseError(
            f"hf models do not accept {', '.join(sorted(unknown))}; "
            "known: max_new_tokens, temperature, top_p, max_batch_size, batch_wait_ms, "
            "device_map, dtype, trust_remote_code, revision, attn_implementation"
        )
    return HFVisionChatModel.load(model, **params)
