"""``cot``: one call that describes, infers intent, decides and answers (1-step CoT).

The MSSBench paper's chain-of-thought baseline: the same reasoning steps as ``poise``, asked
of the base model in a single structured reply. Comparing the two separates the effect of the
reasoning steps from the effect of splitting them into separate calls. For diagnosis, oracle
perception and intent are stated before the task (there is no stage to replace).
"""

from __future__ import annotations

from poise.graphs.pipeline import END, START, PipelineSpec, Stage
from poise.graphs.registry import register_pipeline

STAGE = "cot"

SPEC = register_pipeline(
    PipelineSpec(
        name="cot",
        description="one call: describe the image, infer intent, decide and answer as JSON "
        "(MSSBench 1-step CoT)",
        stages=(Stage(STAGE, "poise.agents.cot:reason_and_answer"),),
        edges=((START, STAGE), (STAGE, END)),
        prompt_stages=frozenset({STAGE}),
        # One call has no stage to skip: ground truth is stated before the task.
        oracle_in_prompt=frozenset({"perception", "intent"}),
    )
)
