"""Node mechanics every pipeline shares: the retry policy, the stage cache, stage-model lookup.

A pipeline module only says which agent runs at which stage; how a node finds its model and
system prompt, when a failure is worth retrying, and when a stage's output can be reused are
decided here, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from poise.agents.models.handle import ModelHandle
from poise.agents.prompts import Prompt
from poise.agents.retry import is_transient
from poise.graphs.cache import stage_key
from poise.graphs.state import PipelineContext, PipelineState

# One retry layer: poise.agents.retry repeats a failed request (at most --max-retries more
# attempts, Retry-After honoured). A node is never retried on top of that: node attempts
# multiplied by request attempts made 28 requests per call on a persistent 500.
RETRY = RetryPolicy(max_attempts=1, retry_on=is_transient)

AgentFn = Callable[
    [Mapping[str, Any], ModelHandle, Prompt | None, RunnableConfig | None],
    Awaitable[dict[str, Any]],
]


def stage_node(
    stage: str, agent: AgentFn, prompt_stages: frozenset[str], *, oracle: str | None = None
):
    """A graph node that runs ``agent`` with the stage's model and system prompt.

    ``prompt_stages`` are the pipeline's default stages for ``--system-prompt``. When the
    state already holds ``oracle`` (ground truth a diagnosis run pre-filled), the node
    passes without a call, so one compiled graph serves normal and oracle runs.
    """

    async def node(
        state: PipelineState, runtime: Runtime[PipelineContext], config: RunnableConfig
    ) -> dict[str, Any]:
        if oracle is not None and state.get(oracle) is not None:
            return {}
        ctx = runtime.context
        model = ctx.model_for(stage)
        system = ctx.system_for(stage, prompt_stages)
        return await run_cached(
            ctx, stage, state, model, system, lambda: agent(state, model, system, config)
        )

    node.__name__ = f"{stage}_node"
    return node


async def run_cached(
    ctx: PipelineContext,
    stage: str,
    state: PipelineState,
    model: ModelHandle,
    system: Prompt | None,
    run: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run a stage, or reuse its update from the context's cache when its inputs repeat.

    Sweep cells that differ only downstream (say, the decision stage's system prompt) then
    share one perception call per sample instead of paying for it in every cell.
    """
    if ctx.stage_cache is None:
        return await run()
    key = stage_key(
        stage,
        model=model.name,
        prompt_sha=system.sha256 if system is not None else None,
        setting=ctx.setting,
        state=dict(state),
    )
    return await ctx.stage_cache.get_or_run(key, run)
