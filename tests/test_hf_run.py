"""A whole run through the hf/ provider: a tiny random LLaVA built in the test, no download."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import build_mossbench_dir
from test_hf_provider import build_tiny_llava

from poise.eval.run.records import read_records
from poise.eval.run.runner import Runner, RunSpec


def test_baseline_run_with_a_local_transformers_model(tmp_path: Path) -> None:
    model_dir = build_tiny_llava(tmp_path / "tiny-llava")
    data = build_mossbench_dir(tmp_path / "data", 4)
    spec = RunSpec(model=f"hf/{model_dir}", data=str(data), pipeline="baseline")
    result = asyncio.run(Runner(spec, tmp_path / "out", progress=False, concurrency=4).run())
    records = read_records(result.directory / "records.jsonl")
    assert len(records) == 4 and all(r.error is None for r in records)
    assert all(isinstance(r.response, str) and r.calls[0].input_tokens for r in records)
    assert result.summary["metrics"]["offline"]["n"] == 4
