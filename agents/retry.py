"""The one retry layer for model calls, and the time limit of each attempt.

Retries used to happen in two places at once: the provider SDK retried a request 6 times and
LangGraph retried the node 4 times, so one call against a server failing with 500 made 28
requests, and a hung server held a sample for about an hour. Now the SDKs are built with
``max_retries=0``, graph nodes are not retried, and :func:`call_with_retries` is the only
place a failed request is repeated:

- at most ``max_retries + 1`` attempts per call;
- each attempt of a network provider is cut off after ``timeout_s`` (the SDK's own timeout
  too, but that one is per socket read; this one bounds the whole attempt);
- only transient failures are retried (timeouts, dropped connections, 429, 5xx);
- between attempts: the server's ``Retry-After`` when it sends one, up to
  :data:`RETRY_AFTER_CAP_S`; otherwise exponential backoff (0.5 s, 1 s, 2 s, ... up to 8 s).

So the worst case per call is ``(max_retries + 1) * timeout_s`` plus the waits between
attempts (at most ``max_retries * RETRY_AFTER_CAP_S``).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 3
RETRY_AFTER_CAP_S = 60.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 8.0
NETWORK_PROVIDERS = frozenset({"openai", "anthropic", "openai-compatible", "google"})
_RETRYABLE_STATUS = 429  # rate limited: the same request succeeds later


@dataclass(frozen=True)
class CallLimits:
    timeout_s: float
    max_retries: int

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    def worst_case_s(self) -> float:
        """Upper bound of one call's wall time: every attempt times out, longest waits."""
        return self.attempts * self.timeout_s + self.max_retries * RETRY_AFTER_CAP_S


_configured: CallLimits | None = None


def configure_calls(*, timeout_s: float | None = None, max_retries: int | None = None) -> None:
    """Set the process-wide limits (the CLI's ``--timeout`` / ``--max-retries``)."""
    global _configured
    base = call_limits()
    _configured = CallLimits(
        timeout_s=base.timeout_s if timeout_s is None else float(timeout_s),
        max_retries=base.max_retries if max_retries is None else int(max_retries),
    )


def reset_calls() -> None:
    """Back to the defaults (the environment's POISE_TIMEOUT / POISE_MAX_RETRIES, if set)."""
    global _configured
    _configured = None


def call_limits() -> CallLimits:
    """The configured limits, else the environment's, else the defaults."""
    if _configured is not None:
        return _configured
    return CallLimits(
        timeout_s=float(os.environ.get("POISE_TIMEOUT", DEFAULT_TIMEOUT_S)),
        max_retries=int(os.environ.get("POISE_MAX_RETRIES", DEFAULT_MAX_RETRIES)),
    )


def is_transient(exc: BaseException) -> bool:
    """True for failures that a repeat of the same request can fix.

    Connection drops, timeouts, rate limits and server errors (5xx) are retried. Everything
    else is not: a PoiseError (the user must fix something), a 4xx (the request is wrong),
    or a bug. SDK modules are looked up in ``sys.modules`` rather than imported: an SDK that
    is not loaded cannot have raised the exception, and importing one here would slow every run.
    """
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    for name in ("httpx", "httpx2"):  # the openai/anthropic SDKs use httpx2
        http = sys.modules.get(name)
        if http is None:
            continue
        if isinstance(exc, http.TimeoutException | http.NetworkError | http.RemoteProtocolError):
            return True
        if isinstance(exc, http.HTTPStatusError):
            return _retryable_status(exc.response.status_code)
    aiohttp = sys.modules.get("aiohttp")  # google-genai's async client when it is installed
    if aiohttp is not None and isinstance(
        exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError
    ):
        return True
    for name in ("openai", "anthropic"):
        sdk = sys.modules.get(name)
        if sdk is None:
            continue
        if isinstance(exc, sdk.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(exc, sdk.APIStatusError):
            return _retryable_status(exc.status_code)
    status = _google_status(exc)
    if status is not None:
        return _retryable_status(status)
    return False


def _google_error(exc: BaseException) -> Any:
    """The google-genai APIError behind ``exc``: itself (5xx) or its cause (LangChain's
    GoogleRateLimitError and other 4xx wrappers carry no status; the SDK error they wrap does)."""
    genai = sys.modules.get("google.genai.errors")
    if genai is None:
        return None
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, genai.APIError):
            return candidate
    return None


def _google_status(exc: BaseException) -> int | None:
    error = _google_error(exc)
    code = getattr(error, "code", None)
    return code if isinstance(code, int) else None


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)s\s*$")


def _google_retry_delay_s(exc: BaseException) -> float | None:
    """Google's requested wait: ``error.details[].retryDelay`` ("7s"); Gemini sends no header."""
    error = _google_error(exc)
    body = getattr(error, "details", None)
    if not isinstance(body, dict):
        return None
    details = (body.get("error") or body).get("details")
    for detail in details if isinstance(details, list) else []:
        match = (
            _DURATION.match(str(detail.get("retryDelay", ""))) if isinstance(detail, dict) else None
        )
        if match:
            return float(match.group(1))
    return None


def _retryable_status(status: int) -> bool:
    return status == _RETRYABLE_STATUS or status >= 500


def retry_after_s(exc: BaseException) -> float | None:
    """The server's requested wait (``retry-after-ms``, ``retry-after``, Google's ``retryDelay``)."""
    google = _google_retry_delay_s(exc)
    if google is not None:
        return google
    response = getattr(exc, "response", None)
    headers: Any = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            from datetime import UTC, datetime

            return (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
    except (TypeError, ValueError, OverflowError):
        return None


def delay_before_retry(exc: BaseException, retry: int) -> float:
    """How long to wait before retry number ``retry`` (0-based) after ``exc``."""
    requested = retry_after_s(exc)
    if requested is not None and requested >= 0:
        return min(requested, RETRY_AFTER_CAP_S)
    backoff = min(BACKOFF_INITIAL_S * 2**retry, BACKOFF_MAX_S)
    return backoff * (1 - 0.25 * random.random())


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    provider: str,
    limits: CallLimits | None = None,
    before: Callable[[], Awaitable[object]] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or the attempts are used up.

    ``before`` is awaited ahead of every attempt and outside its time limit: waiting for a
    rate limit (:mod:`poise.agents.ratelimit`) is not the server being slow, and every
    attempt, a retry included, is a request the provider counts.
    """
    if provider not in NETWORK_PROVIDERS:  # local models and recordings: nothing to wait for
        if before is not None:
            await before()
        return await attempt()
    limits = limits or call_limits()
    timeout = limits.timeout_s
    retry = 0
    while True:
        if before is not None:
            await before()
        try:
            async with asyncio.timeout(timeout):
                return await attempt()
        except Exception as exc:
            if retry >= limits.max_retries or not is_transient(exc):
                if isinstance(exc, TimeoutError):
                    raise TimeoutError(
                        f"no answer within --timeout {timeout:g}s "
                        f"({retry + 1} attempt{'s' if retry else ''})"
                    ) from exc
                raise
            await asyncio.sleep(delay_before_retry(exc, retry))
            retry += 1
