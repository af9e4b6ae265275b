"""Requests-per-minute and tokens-per-minute limits per model (``--max-rpm`` / ``--max-tpm``).

Paid APIs cap each model's requests and tokens per minute; a sweep at full concurrency hits
those caps and then spends its time in 429 retries. Every model call passes through
:func:`poise.agents.invoke.ask`, which waits here before each attempt (a retry included), so
``--concurrency`` decides how many calls may be in flight and these limits decide how fast
they may start: both hold at once.

The buckets are ``aiolimiter.AsyncLimiter`` (a leaky bucket: up to the limit at once, then
refilled evenly over the minute). Tokens are charged *before* a call, when the real count is
not known yet, by a documented estimate (:func:`estimate_tokens`):

- input: one token per :data:`CHARS_PER_TOKEN` characters of text (OpenAI's published rule of
  thumb for English; within about 25 % for prose, worse for code or non-Latin scripts), plus
  :data:`IMAGE_TOKENS_ESTIMATE` per image (a 1024 px image is ~765 tokens on GPT-4o, ~1,000
  on Gemini's 768 px tiles, ~1,400 on Claude: the middle of those);
- output: the mean output tokens this model has reported so far, or its ``max_tokens``
  before the first answer (what OpenAI's own limiter counts).

After the call the provider's reported usage corrects the estimate: tokens used beyond what
was charged are charged to the model's next call (a debt). Tokens charged but not used are
not given back (aiolimiter has no refund), so the limiter errs on the slow side.

Limits are process-wide (set by the CLI through :func:`configure_rate_limits`) and per model
name: ``--max-rpm 500`` gives every network model its own 500/min,
``--max-rpm openai/gpt-4o=500`` limits that model only (any provider, local ones included).
"""

from __future__ import annotations

import asyncio
import math
import warnings
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The models that get a bare ``--max-rpm N`` / ``--max-tpm N`` are those of the providers
# that bill and throttle: the retry layer's network providers.
from poise.agents.retry import NETWORK_PROVIDERS

CHARS_PER_TOKEN = 4
IMAGE_TOKENS_ESTIMATE = 1_000
DEFAULT_OUTPUT_ESTIMATE = 1_024  # before a model's max_tokens or first answer is known
WINDOW_S = 60.0  # "per minute"

RPM = "rpm"
TPM = "tpm"


@dataclass(frozen=True)
class LimitSpec:
    """One option's value: a default for every network model and per-model numbers."""

    default: int | None = None
    per_model: Mapping[str, int] = field(default_factory=dict)

    def for_model(self, name: str) -> int | None:
        if name in self.per_model:
            return self.per_model[name]
        if name.partition("/")[0] in NETWORK_PROVIDERS:
            return self.default
        return None

    def __bool__(self) -> bool:
        return self.default is not None or bool(self.per_model)


@dataclass(frozen=True)
class RateLimits:
    rpm: LimitSpec = field(default_factory=LimitSpec)
    tpm: LimitSpec = field(default_factory=LimitSpec)
    window_s: float = WINDOW_S


def estimate_tokens(texts: Sequence[str], images: int = 0, output: int = 0) -> int:
    """Tokens a call is charged before it is sent: see the module docstring for the rule."""
    chars = sum(len(t) for t in texts)
    return math.ceil(chars / CHARS_PER_TOKEN) + images * IMAGE_TOKENS_ESTIMATE + max(output, 0)


def message_parts(messages: Sequence[Any]) -> tuple[list[str], int]:
    """The text pieces and the number of images in LangChain messages (or role dicts)."""
    texts: list[str] = []
    images = 0
    for message in messages:
        content = getattr(message, "content", None)
        if content is None and isinstance(message, dict):
            content = message.get("content", "")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                images += 1
    return texts, images


class _Bucket:
    """One aiolimiter bucket that survives ``asyncio.run`` being called more than once.

    An AsyncLimiter belongs to one event loop. ``poise diagnose`` runs two loops one after the
    other; a fresh bucket per loop would let each loop start with a full minute's burst. So the
    bucket moves to the new loop once the old one is closed (aiolimiter's own recovery, made
    explicitly and without its warning); the monotonic clock it reads is the same in both.
    A loop running at the same time in another thread gets a bucket of its own.
    """

    def __init__(self, limit: int, window_s: float) -> None:
        from aiolimiter import AsyncLimiter

        self.limit = limit
        self._new = lambda: AsyncLimiter(limit, window_s)
        self._limiter = self._new()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._others: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def limiter(self) -> Any:
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return self._limiter
        if self._loop is None or self._loop.is_closed():
            with warnings.catch_warnings():  # rebinding after the old loop closed is intended
                warnings.simplefilter("ignore", RuntimeWarning)
                self._limiter.has_capacity(0)  # binds the bucket to the running loop
            self._loop = loop
            return self._limiter
        if loop not in self._others:
            self._others[loop] = self._new()
        return self._others[loop]


class ModelLimiter:
    """The rpm and tpm buckets of one model, its token debt and its mean output."""

    def __init__(self, name: str, rpm: int | None, tpm: int | None, window_s: float) -> None:
        self.name = name
        self.rpm = _Bucket(rpm, window_s) if rpm else None
        self.tpm = _Bucket(tpm, window_s) if tpm else None
        self.debt = 0
        self._outputs = 0
        self._answers = 0
        self.requests = 0
        self.tokens_charged = 0

    def expected_output(self, max_tokens: int | None) -> int:
        """Mean reported output so far; the model's max_tokens before the first answer."""
        if self._answers:
            return math.ceil(self._outputs / self._answers)
        return max_tokens or DEFAULT_OUTPUT_ESTIMATE

    async def acquire(self, tokens: int) -> int:
        """Wait until one request of ``tokens`` (estimated) may start; returns the charge."""
        if self.rpm is not None:
            await _take(self.rpm, 1, self.name, RPM)
        charged = 0
        if self.tpm is not None:
            wanted = max(tokens, 0) + self.debt
            charged = min(wanted, self.tpm.limit)  # a call above the whole budget waits for it
            self.debt = wanted - charged
            await _take(self.tpm, charged, self.name, TPM)
        self.requests += 1
        self.tokens_charged += charged
        return charged

    def settle(self, estimated: int, used_in: int | None, used_out: int | None) -> None:
        """Correct the estimate with the provider's usage: tokens over the estimate are owed."""
        if used_out is not None:
            self._outputs += used_out
            self._answers += 1
        if used_in is None and used_out is None:
            return
        actual = (used_in or 0) + (used_out or 0)
        if self.tpm is not None and actual > estimated:
            self.debt += actual - estimated


_waiting: Counter[tuple[str, str]] = Counter()
# What other threads read (a progress bar refreshes from its own thread): an immutable copy,
# replaced whole on every change, so a reader never sees the counter mid-update.
_waiting_view: dict[tuple[str, str], int] = {}


def _count_waiting(model: str, kind: str, change: int) -> None:
    global _waiting_view
    _waiting[(model, kind)] += change
    if _waiting[(model, kind)] <= 0:
        del _waiting[(model, kind)]
    _waiting_view = dict(_waiting)


async def _take(bucket: _Bucket, amount: int, model: str, kind: str) -> None:
    limiter = bucket.limiter()
    if limiter.has_capacity(amount):
        await limiter.acquire(amount)
        return
    _count_waiting(model, kind, +1)
    try:
        await limiter.acquire(amount)
    finally:
        _count_waiting(model, kind, -1)


def waiting_on_limits() -> dict[tuple[str, str], int]:
    """Calls waiting right now, by (model, "rpm" | "tpm"): what a progress line shows.

    Safe to call from any thread.
    """
    return dict(_waiting_view)


def waiting_summary() -> str:
    """One short phrase for a progress line ("" when nothing waits).

    e.g. ``waiting on rate limit: openai/gpt-4o rpm (3 calls)``.
    """
    waiting = waiting_on_limits()
    if not waiting:
        return ""
    parts = [
        f"{model} {kind} ({n} call{'s' if n != 1 else ''})"
        for (model, kind), n in sorted(waiting.items())
    ]
    return "waiting on rate limit: " + ", ".join(parts)


_configured = RateLimits()
_limiters: dict[str, ModelLimiter] = {}


def configure_rate_limits(
    *,
    max_rpm: LimitSpec | None = None,
    max_tpm: LimitSpec | None = None,
    window_s: float = WINDOW_S,
) -> None:
    """Set the process-wide limits (the CLI's ``--max-rpm`` / ``--max-tpm``)."""
    global _configured
    _configured = RateLimits(
        rpm=max_rpm or LimitSpec(), tpm=max_tpm or LimitSpec(), window_s=window_s
    )
    _limiters.clear()


def reset_rate_limits() -> None:
    """No limits (the default), and forget every bucket."""
    global _waiting_view
    configure_rate_limits()
    _waiting.clear()
    _waiting_view = {}


def rate_limits() -> RateLimits:
    return _configured


def limiter_for(model: str) -> ModelLimiter | None:
    """The model's limiter, shared by every call to it in this process; None if unlimited."""
    if model in _limiters:
        return _limiters[model]
    config = _configured
    rpm, tpm = config.rpm.for_model(model), config.tpm.for_model(model)
    if not rpm and not tpm:
        return None
    _limiters[model] = ModelLimiter(model, rpm, tpm, config.window_s)
    return _limiters[model]
