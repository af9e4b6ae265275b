"""Reuse a stage's output when its inputs are the same (sweeps, diagnosis reruns).

Two cells of a sweep that differ only in the system prompt of the later stages share the
earlier stages' inputs exactly: same sample, same model, same prompt for that stage, same
upstream outputs. :class:`StageCache` runs such a stage once and hands every other caller a
copy whose calls are marked ``cached`` (so usage counts the calls made and the calls saved).
Concurrent callers of the same key wait for the one in flight instead of calling twice.

The cache lives in the run context (``PipelineContext.stage_cache``); a plain run has none.
What the node does not see is scoped by the run: each run (and each epoch of a run) gets a
:meth:`StageCache.scoped` view whose keys also carry the stage model's sampling parameters
and the epoch, so a cell at temperature 1 never reuses a cell's answer at temperature 0, and
the second draw of a sample is a new call, not a copy of the first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

UPSTREAM_KEYS = ("query", "perception", "intent", "decision", "stages")


def stage_key(
    stage: str, *, model: str, prompt_sha: str | None, setting: str | None, state: dict[str, Any]
) -> str:
    """A digest of everything that determines a stage's output."""
    sample = state["sample"]
    payload = {
        "stage": stage,
        "model": model,
        "prompt": prompt_sha,
        "setting": setting,
        "sample": [sample.benchmark, sample.id, sample.query],
        "upstream": {k: state.get(k) for k in UPSTREAM_KEYS},
    }
    blob = json.dumps(payload, sort_keys=True, default=str)
    # The stage leads the key so that a scoped view can add that stage's own parameters.
    return f"{stage}:{hashlib.sha256(blob.encode()).hexdigest()}"


Scope = Callable[[str], dict[str, Any]]


def scoped_key(key: str, scope: Scope) -> str:
    """``key`` with the run's scope for its stage (parameters, epoch) mixed in.

    An empty scope (default parameters, epoch 0) leaves the key as it is, so runs that set
    nothing share stages exactly as before.
    """
    stage = key.partition(":")[0]
    extra = scope(stage)
    if not extra:
        return key
    blob = json.dumps([key, extra], sort_keys=True, default=str)
    return f"{stage}:{hashlib.sha256(blob.encode()).hexdigest()}"


class StageCache:
    """Single-flight, in-memory memo of stage updates keyed by :func:`stage_key`."""

    def __init__(self) -> None:
        self._entries: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.hits = 0
        self.misses = 0

    def scoped(self, scope: Scope) -> ScopedStageCache:
        """A view that shares these entries but keys each stage with ``scope(stage)`` too."""
        return ScopedStageCache(self, scope)

    async def get_or_run(
        self, key: str, run: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        future = self._entries.get(key)
        if future is not None:
            self.hits += 1
            update = await asyncio.shield(future)
            return _as_reused(update)
        future = asyncio.get_running_loop().create_future()
        self._entries[key] = future
        self.misses += 1
        try:
            update = await run()
        except BaseException as exc:
            del self._entries[key]  # a failure is not cached: the next caller tries again
            future.set_exception(exc)
            future.exception()  # mark retrieved so asyncio does not warn when nobody waits
            raise
        future.set_result(update)
        return update


class ScopedStageCache(StageCache):
    """One run's (or one epoch's) view of a shared :class:`StageCache`.

    ``scope(stage)`` returns what besides the node's own inputs determines that stage's
    output: the stage model's non-default sampling parameters and the epoch.
    """

    def __init__(self, cache: StageCache, scope: Scope) -> None:  # noqa: D107
        # No super().__init__: the entries and counters are the shared cache's.
        self.cache = cache
        self.scope = scope

    @property  # type: ignore[override]
    def hits(self) -> int:
        return self.cache.hits

    @property  # type: ignore[override]
    def misses(self) -> int:
        return self.cache.misses

    def scoped(self, scope: Scope) -> ScopedStageCache:
        """A narrower view: this view's scope and ``scope`` both."""
        outer = self.scope
        return ScopedStageCache(self.cache, lambda stage: {**outer(stage), **scope(stage)})

    async def get_or_run(
        self, key: str, run: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        return await self.cache.get_or_run(scoped_key(key, self.scope), run)


def _as_reused(update: dict[str, Any]) -> dict[str, Any]:
    calls = [call.model_copy(update={"cached": True}) for call in update.get("calls", [])]
    return {**update, "calls": calls}
