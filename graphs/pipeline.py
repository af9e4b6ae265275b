"""A pipeline as a declaration, and the one builder that compiles every pipeline's graph.

A pipeline module declares its stages (name, agent, the node that runs it, the state key an
oracle may pre-fill), the edges between nodes (plain or routed) and where ``--system-prompt``
applies by default; :func:`compile_pipeline` turns that into a LangGraph graph. Every node
is made the same way (:mod:`poise.graphs.nodes`), so every pipeline gets the stage's model
(``--stage-model``), its system prompt, the stage cache (sweep reuse), the retry policy,
per-stage call records and oracle skipping without a line of its own. Adding a pipeline is
one file with one :class:`PipelineSpec`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

# The node names LangGraph reserves for a graph's entry and exit (a cheap import: declaring a
# pipeline, or listing pipelines, never loads LangGraph itself or the agents' model clients).
from langgraph.constants import END, START

if TYPE_CHECKING:
    from poise.graphs.nodes import AgentFn

__all__ = ["END", "START", "PipelineSpec", "Route", "Stage", "compile_pipeline"]


@dataclass(frozen=True)
class Stage:
    """One model-calling step.

    ``name`` is what ``--stage-model`` / ``--prompt-stages`` and the records call it; ``node``
    the graph node that runs it (two nodes may run one stage, e.g. ``answer`` and ``refuse``
    both run ``response``). ``oracle`` names the state key a diagnosis run pre-fills with
    ground truth: the node then passes without a call. ``agent`` receives the state, the
    stage's model, its system prompt and the run config, and returns a state update; its
    parse fallbacks are its own (documented in its module). It may be given as
    ``"module:function"``, imported when the graph is compiled, so that declaring (and
    listing) a pipeline loads no model client.
    """

    name: str
    agent: AgentFn | str
    node: str = ""
    oracle: str | None = None

    @property
    def node_name(self) -> str:
        return self.node or self.name

    def resolve(self) -> AgentFn:
        """The agent function (importing its module when given by reference)."""
        if not isinstance(self.agent, str):
            return self.agent
        module, _, attribute = self.agent.partition(":")
        return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Route:
    """A conditional edge: ``router(state)`` picks one of ``targets`` after ``source``."""

    source: str
    router: Callable[[Any], str]
    targets: tuple[str, ...]


Edge = tuple[str, str] | Route


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the runner, the sweep and diagnosis need to know about a pipeline.

    ``oracle_keys`` are the ground truths the pipeline can take (``--oracle``): a stage's
    ``oracle`` key skips that stage; keys listed in ``oracle_in_prompt`` are read by an agent
    that states them in its prompt (a one-call pipeline has no stage to skip).
    """

    name: str
    description: str
    stages: tuple[Stage, ...]
    edges: tuple[Edge, ...]
    prompt_stages: frozenset[str]
    oracle_in_prompt: frozenset[str] = field(default_factory=frozenset)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Distinct stage names in declaration order (the ``--stage-model`` keys)."""
        return tuple(dict.fromkeys(stage.name for stage in self.stages))

    @property
    def oracle_stages(self) -> frozenset[str]:
        """What ``--oracle`` may supply: stages it skips and ground truth an agent states."""
        skipped = {stage.oracle for stage in self.stages if stage.oracle}
        return frozenset(skipped) | self.oracle_in_prompt

    @property
    def graph(self) -> Any:
        """The compiled graph, built once per process."""
        return _compiled(self)


@cache
def _compiled(spec: PipelineSpec) -> Any:
    return compile_pipeline(spec)


def compile_pipeline(spec: PipelineSpec, retry: Any = None) -> Any:
    """The compiled graph of ``spec``: one node per stage, its edges, the shared mechanics.

    ``retry`` replaces the nodes' retry policy (tests); by default the shared one.
    """
    from langgraph.graph import StateGraph

    from poise.graphs.nodes import RETRY, stage_node
    from poise.graphs.state import PipelineContext, PipelineState

    retry = RETRY if retry is None else retry
    graph = StateGraph(PipelineState, context_schema=PipelineContext)
    for stage in spec.stages:
        node = stage_node(stage.name, stage.resolve(), spec.prompt_stages, oracle=stage.oracle)
        graph.add_node(stage.node_name, node, retry_policy=retry)
    for edge in spec.edges:
        if isinstance(edge, Route):
            graph.add_conditional_edges(edge.source, edge.router, list(edge.targets))
        else:
            graph.add_edge(*edge)
    return graph.compile()
