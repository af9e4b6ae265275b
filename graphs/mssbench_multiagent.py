"""``mssbench-multiagent``: the MSSBench paper's multi-agent pipeline, working and faithful.

The paper splits situational-safety reasoning over small agents, each fed the previous one's
output (the official code passed the wrong inputs and did not run; here every hand-over is
explicit and tested). The route follows the sample's benchmark::

    START --route_entry--> infer_intent | judge_activity | find_important_point
    chat:     infer_intent -> judge_activity --route_verdict--> answer | answer_with_warning
    embodied: find_important_point -> respond

- intent (chat, text only): the query -> the activity the user most likely intends. Text only
  because the query is its whole input in the paper; the image is read by the judge agent, so
  a wrong activity and a wrong reading of the scene stay separable in the record.
- judge (chat): image + that activity -> ``{"reasoning", "verdict": safe|unsafe}``.
- qa (chat): image + query, with the prompt chosen by the verdict: answer normally, or answer
  and warn of the risk the judge named (its reasoning is quoted into the prompt).
- important_point (embodied, text only): the instruction -> which state of the environment
  matters for doing it safely.
- response (embodied): image + instruction + that point -> ``{"reasoning", "unsafe",
  "response"}``; ``response`` is the final answer the judge grades.

Fallbacks (parse failures never stop a sample; the Call records the parse error):
- intent: an empty reply uses the query itself as the activity.
- judge: an unparseable verdict counts as **unsafe**, so the QA agent warns; with the raw
  reply as the reasoning. Missing a real risk is the costlier error on this benchmark.
- important_point: an empty reply becomes "(no specific point given)".
- response: unparseable JSON -> the text after "Response to instruction:" if the model wrote
  the paper's labelled format, else the whole reply; ``unsafe`` is then None.

Oracle: ``--oracle perception`` states the benchmark's description of the scene before the
judge's and the embodied response agent's prompts (the agents that read the image).
``--oracle intent`` pre-fills ``state["intent"]`` (``intent_text`` = the benchmark's
intent) and the chat route's intent stage passes without a call. The embodied route has no
intent stage and ignores it. Samples of a benchmark whose task is ``embodied`` take the
embodied route; every other benchmark takes the chat route (its query-image form fits any
visual question). MSSBench settings (``--setting``) do not apply:
this pipeline is its own framing and always starts from the raw query or instruction.
"""

from __future__ import annotations

from typing import Any

from poise.benchmarks.registry import benchmark_spec
from poise.graphs.pipeline import END, START, PipelineSpec, Route, Stage
from poise.graphs.registry import register_pipeline

NAME = "mssbench-multiagent"
CHAT_STAGES = ("intent", "judge", "qa")
EMBODIED_STAGES = ("important_point", "response")
STAGES = CHAT_STAGES + EMBODIED_STAGES
PROMPT_STAGES = frozenset({"qa", "response"})
_AGENTS = "poise.agents.multiagent"


def route_entry(state: dict[str, Any]) -> str:
    """Embodied samples to the important-point agent, every other sample to the chat route."""
    embodied = benchmark_spec(state["sample"].benchmark).task == "embodied"
    return "find_important_point" if embodied else "infer_intent"


def route_verdict(state: dict[str, Any]) -> str:
    verdict = (state.get("stages") or {}).get("judge", {}).get("verdict")
    return "answer" if verdict == "safe" else "answer_with_warning"


SPEC = register_pipeline(
    PipelineSpec(
        name=NAME,
        description="MSSBench paper's multi-agent pipeline: chat intent -> judge -> QA; "
        "embodied important point -> response",
        stages=(
            Stage("intent", f"{_AGENTS}:infer_intent", node="infer_intent", oracle="intent"),
            Stage("judge", f"{_AGENTS}:judge_activity", node="judge_activity"),
            Stage("qa", f"{_AGENTS}:answer", node="answer"),
            Stage("qa", f"{_AGENTS}:answer_with_warning", node="answer_with_warning"),
            Stage(
                "important_point", f"{_AGENTS}:find_important_point", node="find_important_point"
            ),
            Stage("response", f"{_AGENTS}:respond", node="respond"),
        ),
        edges=(
            Route(START, route_entry, ("infer_intent", "find_important_point")),
            ("infer_intent", "judge_activity"),
            Route("judge_activity", route_verdict, ("answer", "answer_with_warning")),
            ("answer", END),
            ("answer_with_warning", END),
            ("find_important_point", "respond"),
            ("respond", END),
        ),
        prompt_stages=PROMPT_STAGES,
        # The agents that read the image are told an oracle's description of it.
        oracle_in_prompt=frozenset({"perception"}),
    )
)
