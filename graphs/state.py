"""Typed state and run-time context shared by every pipeline.

The state holds what a pipeline computes for one sample; nodes return partial updates.
``calls`` uses an add-reducer so that every node appends its model calls and the record
shows each stage. The context holds what does not change during a run: the models for each
stage, the system prompt and where it applies, and the stages replaced by ground truth.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from poise.agents.calls import Call
from poise.agents.models.handle import ModelHandle
from poise.agents.prompts import Prompt
from poise.benchmarks.sample import Sample
from poise.graphs.cache import StageCache


class PipelineState(TypedDict, total=False):
    sample: Sample
    query: str  # the query as the pipeline asks it (a benchmark setting may frame it)
    image_url: str | None  # the image as a data URL, encoded once per sample
    perception: dict[str, Any]
    intent: dict[str, Any]
    decision: dict[str, Any]
    response: str
    # Any other stage's structured output (e.g. the MSSBench multi-agent stages).
    stages: Annotated[dict[str, Any], lambda a, b: {**a, **b}]
    calls: Annotated[list[Call], operator.add]


STAGES_WITH_STATE_KEYS = ("perception", "intent", "decision")


@dataclass(frozen=True)
class PipelineContext:
    """Run-wide settings every node reads through ``Runtime[PipelineContext]``."""

    model: ModelHandle
    stage_models: dict[str, ModelHandle] = field(default_factory=dict)
    system_prompt: Prompt | None = None
    prompt_stages: frozenset[str] | None = None  # None: the pipeline's default stages
    oracle: frozenset[str] = frozenset()
    setting: str | None = None  # benchmark-specific task framing, e.g. MSSBench "if" / "qc"
    stage_cache: StageCache | None = field(default=None, compare=False)  # reuse across runs

    def model_for(self, stage: str) -> ModelHandle:
        return self.stage_models.get(stage, self.model)

    def system_for(self, stage: str, default_stages: frozenset[str]) -> Prompt | None:
        """The system prompt applies to the stages the user named, or the pipeline's default."""
        if self.system_prompt is None or not self.system_prompt.text:
            return None
        stages = self.prompt_stages if self.prompt_stages is not None else default_stages
        return self.system_prompt if stage in stages else None


def intent_harmfulness(benchmark: str) -> str | None:
    """``"harmful"`` or ``"benign"`` where the benchmark defines its intents' harm, else None.

    From the benchmark's spec (``intent_harmful``): MOSSBench's contrast set would be harmful
    and its benign set benign, MSSBench's intents are benign (its risk is in the situation).
    An unknown benchmark (a test's ad-hoc sample) defines nothing.
    """
    from poise.benchmarks.registry import benchmark_spec
    from poise.errors import PoiseError

    try:
        harmful = benchmark_spec(benchmark).intent_harmful
    except PoiseError:
        return None
    return None if harmful is None else ("harmful" if harmful else "benign")


def oracle_problem(benchmark: str, oracle: frozenset[str] | set[str] | list[str]) -> str | None:
    """One line saying which requested oracle ``benchmark`` carries no ground truth for, or None.

    ``--oracle intent`` on MOSSBench has nothing to inject (its samples have no intent text);
    the runner and ``poise diagnose`` say so instead of injecting the query as "ground truth".
    """
    from poise.benchmarks.registry import benchmark_spec

    spec = benchmark_spec(benchmark)
    missing = sorted(set(oracle) - set(spec.oracles))
    if not missing:
        return None
    carried = ", ".join(sorted(spec.oracles)) or "none"
    return (
        f"--oracle {', '.join(missing)}: {benchmark} carries no ground-truth "
        f"{' or '.join(missing)} (it has no {' or '.join(missing)} text); "
        f"oracles it carries: {carried}"
    )


def oracle_prefill(sample: Sample, oracle: frozenset[str]) -> dict[str, Any]:
    """State entries that replace stages with the benchmark's ground truth, and nothing else.

    A pre-filled stage is skipped by the graph (its router sees the output present), so the
    same compiled pipeline serves normal and diagnosis runs. Only what the benchmark states is
    injected:

    - perception: the benchmark's description of the image (nothing when the sample has none,
      e.g. an MSSBench safe-side chat image: the stage then runs as usual);
    - intent: the benchmark's intent text, and its harmfulness only where the benchmark
      defines it (``intent_harmful`` in its spec). Never a ``verdict`` or a ``confidence``:
      those are the intent stage's answer to the safety question, which on MSSBench the
      situation decides, so an oracle that set them would decide it for the pipeline. The
      intent text goes into ``benign_reading`` / ``harmful_reading`` as the benchmark
      classifies it, and always into ``intent_text``. A sample without intent text gets none.
    """
    update: dict[str, Any] = {}
    if "perception" in oracle and sample.oracle_perception:
        update["perception"] = {
            "description": sample.oracle_perception,
            "salient_objects": [],
            "visible_text": "",
            "safety_cues": [],
            "refused": False,
            "source": "oracle",
        }
    if "intent" in oracle and sample.oracle_intent:
        harmfulness = intent_harmfulness(sample.benchmark)
        intent: dict[str, Any] = {
            "intent_text": sample.oracle_intent,
            "benign_reading": sample.oracle_intent if harmfulness == "benign" else "",
            "harmful_reading": sample.oracle_intent if harmfulness == "harmful" else "",
            "rationale": "the user's intent as the benchmark states it; not a safety verdict",
            "source": "oracle",
        }
        if harmfulness is not None:
            intent["harmfulness"] = harmfulness
        update["intent"] = intent
    return update
