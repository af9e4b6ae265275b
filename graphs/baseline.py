"""``baseline``: one call to the base model with the image and the query.

This is what both benchmarks' papers measure; every other pipeline is compared with it.
Oracle perception / intent (diagnosis) are stated in the question, as the MOSSBench paper's
stage analysis did.
"""

from __future__ import annotations

from poise.graphs.pipeline import END, START, PipelineSpec, Stage
from poise.graphs.registry import register_pipeline

STAGE = "baseline"  # the stage name poise.agents.direct records its call under

SPEC = register_pipeline(
    PipelineSpec(
        name="baseline",
        description="one call to the base model with image + query (what the papers measure)",
        stages=(Stage(STAGE, "poise.agents.direct:answer_directly"),),
        edges=((START, STAGE), (STAGE, END)),
        prompt_stages=frozenset({STAGE}),
        oracle_in_prompt=frozenset({"perception", "intent"}),
    )
)
