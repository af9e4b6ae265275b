"""``poise``: perceive -> infer intent -> decide -> respond, routed on the decision.

Each stage is its own model call so that a run records where a wrong answer began, and so
that a diagnosis run can replace a stage with the benchmark's ground truth: a stage whose
oracle key is pre-filled passes without a call (see :mod:`poise.graphs.pipeline`), so the same
compiled graph serves normal and oracle runs.

Edges::

    START --> perceive --> infer_intent --> decide --route_decision--> answer | refuse --> END

``answer`` (comply / comply_with_note) and ``refuse`` share the responder agent, whose prompt
follows the decision; separate nodes make the route visible in the graph and the trace.
"""

from __future__ import annotations

from poise.graphs.pipeline import END, START, PipelineSpec, Route, Stage
from poise.graphs.registry import register_pipeline


def route_decision(state: dict) -> str:
    """Refusals go to ``refuse``; comply and comply_with_note (the fallback) to ``answer``."""
    chosen = (state.get("decision") or {}).get("decision")
    return "refuse" if chosen == "refuse" else "answer"


SPEC = register_pipeline(
    PipelineSpec(
        name="poise",
        description="perception -> intent -> safety decision -> response, routed on the decision",
        stages=(
            Stage(
                "perception",
                "poise.agents.perception:perceive",
                node="perceive",
                oracle="perception",
            ),
            Stage(
                "intent", "poise.agents.intent:infer_intent", node="infer_intent", oracle="intent"
            ),
            Stage("decision", "poise.agents.decision:decide", node="decide"),
            Stage("response", "poise.agents.responder:respond", node="answer"),
            Stage("response", "poise.agents.responder:respond", node="refuse"),
        ),
        edges=(
            (START, "perceive"),
            ("perceive", "infer_intent"),
            ("infer_intent", "decide"),
            Route("decide", route_decision, ("answer", "refuse")),
            ("answer", END),
            ("refuse", END),
        ),
        prompt_stages=frozenset({"decision", "response"}),
    )
)
