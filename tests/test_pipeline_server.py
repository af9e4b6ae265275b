"""The poise pipeline end to end through the real openai-compatible client and a local server.

The server is scripted per stage (it reads the structured-output schema name) so that the
test knows which samples must be refused: the questions of samples 2 and 4 are "harmful".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from conftest import build_mossbench_dir

from poise.eval.run.records import read_records
from poise.eval.run.runner import Runner, RunSpec
from poise.eval.testing.openai_server import ChatRequest, MockOpenAIServer

HARMFUL = ("number 2?", "number 4?")
REFUSAL = "I'm sorry, but I can't help with that. You could ask about safety instead."
ANSWER = "Here is a complete answer: build a tower with the blocks."


def stage_of(request: ChatRequest) -> str:
    rf = request.response_format or {}
    name = ((rf.get("json_schema") or {}).get("name") or "").lower()
    return name or ("refuse" if "should not fulfil" in request.text else "respond")


def scripted(request: ChatRequest):
    harmful = any(h in request.text for h in HARMFUL)
    stage = stage_of(request)
    if stage == "perception":
        return {
            "description": "A playroom with toy blocks.",
            "salient_objects": ["blocks"],
            "visible_text": "",
            "safety_cues": [],
            "refused": False,
        }
    if stage == "intent":
        return {
            "benign_reading": "play",
            "harmful_reading": "hurt someone" if harmful else "",
            "verdict": "harmful" if harmful else "benign",
            "confidence": 0.9,
            "rationale": "scripted",
        }
    if stage == "decision":
        return {
            "decision": "refuse" if harmful else "comply",
            "risk": "harm" if harmful else "",
            "rationale": "scripted",
        }
    return REFUSAL if stage == "refuse" else ANSWER


def _run(spec: RunSpec, out: Path):
    return asyncio.run(Runner(spec, out, progress=False, concurrency=4).run())


def test_poise_pipeline_decides_and_records_every_stage(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 6)
    with MockOpenAIServer(reply=scripted) as server:
        spec = RunSpec(
            model="openai-compatible/vlm",
            base_url=server.base_url,
            data=str(data),
            pipeline="poise",
            system_prompt="calibrated",
        )
        result = _run(spec, tmp_path / "out")
        assert server.request_count == 6 * 4
    records = {r.sample_id: r for r in read_records(result.directory / "records.jsonl")}
    assert len(records) == 6
    for sid, record in records.items():
        refused = sid in ("2", "4")
        assert [c.stage for c in record.calls] == ["perception", "intent", "decision", "response"]
        assert all(c.model == "openai-compatible/vlm" for c in record.calls)
        assert record.stages["decision"]["decision"] == ("refuse" if refused else "comply")
        assert record.stages["intent"]["verdict"] == ("harmful" if refused else "benign")
        assert record.response == (REFUSAL if refused else ANSWER)
        assert record.verdicts["offline"].refused is refused
        # the system prompt reaches the decision and response stages only (the default)
        systems = [c.stage for c in record.calls if c.messages[0]["role"] == "system"]
        assert systems == ["decision", "response"]
        assert record.system_prompt.name == "calibrated" and len(record.system_prompt.sha256) == 16
    assert result.summary["metrics"]["offline"]["refusal_rate"] == pytest.approx(
        100 * 2 / 6, abs=0.01
    )


def test_oracle_perception_makes_no_perception_call(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 3)
    with MockOpenAIServer(reply=scripted) as server:
        spec = RunSpec(
            model="openai-compatible/vlm",
            base_url=server.base_url,
            data=str(data),
            pipeline="poise",
            oracle=["perception"],
        )
        result = _run(spec, tmp_path / "out")
        stages = Counter(stage_of(r) for r in server.requests)
    assert stages["perception"] == 0 and stages["intent"] == 3 and server.request_count == 9
    for record in read_records(result.directory / "records.jsonl"):
        assert record.stages["perception"]["source"] == "oracle"
        assert "A detailed description of scene" in record.calls[0].messages[-1]["content"]


def test_server_failing_every_fifth_request_still_records_each_sample_once(
    tmp_path: Path, monkeypatch
) -> None:
    # A retry lands on another multiple of 5 about one time in five, depending on how the
    # other samples' requests interleave: with 3 retries a sample ran out of them once, in a
    # full suite on a loaded machine. With 8 (0.2^8 per failure, ~8 failures a run) about once in
    # 50,000 runs; failing is not what is tested.
    monkeypatch.setenv("POISE_MAX_RETRIES", "8")
    data = build_mossbench_dir(tmp_path / "data", 8)
    with MockOpenAIServer(reply=scripted, fail_every=5, retry_after=0.01) as server:
        spec = RunSpec(
            model="openai-compatible/vlm",
            base_url=server.base_url,
            data=str(data),
            pipeline="poise",
        )
        result = _run(spec, tmp_path / "out")
        assert server.failures >= 6
    records = read_records(result.directory / "records.jsonl")
    assert Counter(r.sample_id for r in records) == Counter({str(i): 1 for i in range(1, 9)})
    assert all(r.error is None and len(r.calls) == 4 for r in records), [
        (r.sample_id, r.error, len(r.calls)) for r in records
    ]


def test_stage_model_names_the_model_of_every_call(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 2)
    with MockOpenAIServer(reply=scripted) as server:
        spec = RunSpec(
            model="openai-compatible/big",
            base_url=server.base_url,
            data=str(data),
            pipeline="poise",
            stage_models={"perception": "openai-compatible/small"},
        )
        result = _run(spec, tmp_path / "out")
        models = Counter(r.model for r in server.requests)
    assert models == {"small": 2, "big": 6}
    record = read_records(result.directory / "records.jsonl")[0]
    assert [c.model for c in record.calls][:2] == [
        "openai-compatible/small",
        "openai-compatible/big",
    ]


def test_sweep_reuses_shared_stages(tmp_path: Path) -> None:
    from poise.eval.run.sweep import plan, run_sweep

    data = build_mossbench_dir(tmp_path / "data", 4)
    with MockOpenAIServer(reply=scripted) as server:
        base = RunSpec(model="x/y", base_url=server.base_url, data=str(data))
        specs = plan(
            benchmarks=["mossbench"],
            models=["openai-compatible/vlm"],
            pipelines=["poise"],
            system_prompts=[None, "safety", "helpfulness"],
            base=base,
        )
        result = asyncio.run(run_sweep(specs, tmp_path / "sweep", concurrency=6, progress=False))
        # N*(2+2k) with N=4 samples and k=3 prompts: perception and intent are shared
        assert server.request_count == 4 * (2 + 2 * 3)
    assert result.calls_made == 32 and result.calls_saved == 4 * 2 * 2
    assert len(result.summaries) == 3 and (tmp_path / "sweep" / "sweep.json").is_file()
