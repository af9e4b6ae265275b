"""MSSBench runs end to end: every pipeline, against a local server whose replies depend on
the image (green = safe scene, red = unsafe scene), so the right accuracy is known."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from mssbench_fixture import build_mssbench_fixture

from poise.eval.run.records import read_records
from poise.eval.run.runner import Runner, RunSpec
from poise.eval.testing.openai_server import ChatRequest, MockOpenAIServer, schema_example

SAFE_TEXT = "Sure! Here is how to do it: first gather what you need, then follow these steps."
UNSAFE_TEXT = (
    "Warning: this looks dangerous here. Please be careful and avoid doing this near the hazard."
)


def scene(request: ChatRequest) -> str | None:
    from PIL import Image

    if not request.images:
        return None
    red, green, _ = Image.open(BytesIO(request.images[-1])).convert("RGB").getpixel((0, 0))
    return "unsafe" if red > green else "safe"


def image_aware(request: ChatRequest):
    """Answer according to the scene; structured requests get their schema with that text."""
    seen = scene(request)
    text = {"safe": SAFE_TEXT, "unsafe": UNSAFE_TEXT, None: "noted"}[seen]
    schema = request.json_schema
    if schema is None:
        return text
    example = schema_example(schema)
    return {k: (text if isinstance(v, str) else v) for k, v in example.items()}


def blind(request: ChatRequest):
    """Ignores the image: always helps, never warns."""
    schema = request.json_schema
    if schema is None:
        return SAFE_TEXT
    return {k: (SAFE_TEXT if isinstance(v, str) else v) for k, v in schema_example(schema).items()}


def run_cli(data: Path, out: Path, base_url: str, *options: str) -> subprocess.CompletedProcess:
    """``poise run --benchmark mssbench-chat`` as a user types it, in a subprocess."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "poise.eval.cli",
            "run",
            "--benchmark",
            "mssbench-chat",
            "--data",
            str(data),
            "--base-url",
            base_url,
            "--out",
            str(out),
            "--no-progress",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def mssbench_dir(tmp_path: Path) -> Path:
    return build_mssbench_fixture(tmp_path / "mssbench", quirks=False)


@pytest.mark.parametrize("pipeline", ["baseline", "cot", "poise", "mssbench-multiagent"])
@pytest.mark.parametrize("benchmark", ["mssbench-chat", "mssbench-embodied"])
def test_every_pipeline_scores_an_image_aware_model_perfectly(
    pipeline: str, benchmark: str, mssbench_dir: Path, tmp_path: Path
) -> None:
    with MockOpenAIServer(reply=image_aware) as server:
        spec = RunSpec(
            benchmark=benchmark,
            data=str(mssbench_dir),
            model="openai-compatible/vlm",
            base_url=server.base_url,
            pipeline=pipeline,
        )
        result = asyncio.run(Runner(spec, tmp_path / "out", progress=False).run())
    metrics = result.summary["metrics"]["mssbench-offline"]
    assert result.summary["errors"] == 0
    assert (metrics["safe_accuracy"], metrics["unsafe_accuracy"], metrics["average"]) == (
        100,
        100,
        100,
    )
    assert metrics["pairs"]["both_right"] == 100


def test_a_model_blind_to_the_situation_scores_fifty(mssbench_dir: Path, tmp_path: Path) -> None:
    with MockOpenAIServer(reply=blind) as server:
        spec = RunSpec(
            benchmark="mssbench-chat",
            data=str(mssbench_dir),
            model="openai-compatible/vlm",
            base_url=server.base_url,
        )
        result = asyncio.run(Runner(spec, tmp_path / "out", progress=False).run())
    metrics = result.summary["metrics"]["mssbench-offline"]
    assert (metrics["safe_accuracy"], metrics["unsafe_accuracy"], metrics["average"]) == (
        100,
        0,
        50,
    )
    assert metrics["pairs"]["both_right"] == 0
    assert set(metrics["by_category"]) and all(
        c["unsafe_accuracy"] == 0 for c in metrics["by_category"].values()
    )


def test_qc_setting_is_scored_by_its_safe_unsafe_answer(mssbench_dir: Path, tmp_path: Path) -> None:
    def classify(request: ChatRequest) -> str:
        return "Reasoning: looked at the scene.\nAnswer: " + (
            "UNSAFE" if scene(request) == "unsafe" else "SAFE"
        )

    with MockOpenAIServer(reply=classify) as server:
        spec = RunSpec(
            benchmark="mssbench-chat",
            data=str(mssbench_dir),
            model="openai-compatible/vlm",
            base_url=server.base_url,
            setting="ic",
        )
        result = asyncio.run(Runner(spec, tmp_path / "out", progress=False).run())
        assert "Answer" in server.requests[0].text  # the setting's prompt framed the query
    metrics = result.summary["metrics"]["mssbench-classification"]
    assert (metrics["safe_accuracy"], metrics["unsafe_accuracy"]) == (100, 100)


def test_cli_runs_mssbench_and_prints_the_accuracy_table(
    mssbench_dir: Path, tmp_path: Path
) -> None:
    with MockOpenAIServer(reply=image_aware) as server:
        result = run_cli(
            mssbench_dir,
            tmp_path / "out",
            server.base_url,
            "--pipeline",
            "poise",
            "--model",
            "openai-compatible/vlm",
        )
    assert result.returncode == 0, result.stderr
    assert "Situational safety accuracy" in result.stdout and "100" in result.stdout
    records = read_records(next((tmp_path / "out").glob("*/records.jsonl")))
    assert len(records) == 24 and {r.variant for r in records} == {"safe", "unsafe"}


def test_published_row_is_printed_for_a_model_in_the_papers_table(
    mssbench_dir: Path, tmp_path: Path
) -> None:
    from poise.benchmarks.published import mssbench_row

    assert mssbench_row("openai/gpt-4o")["if"]["mssbench-chat"]["unsafe"] == 12.0
    assert (
        mssbench_row("openai-compatible/llava-hf/llava-v1.6-mistral-7b-hf")["model"] == "LLaVA-1.6"
    )
    assert mssbench_row("openai/some-new-model") is None
    with MockOpenAIServer(reply=blind) as server:
        result = run_cli(
            mssbench_dir, tmp_path / "out", server.base_url, "--model", "openai-compatible/gpt-4o"
        )
    assert result.returncode == 0, result.stderr
    assert "paper's GPT-4o safe 98.8 / unsafe 12 / average 55.4" in result.stdout
