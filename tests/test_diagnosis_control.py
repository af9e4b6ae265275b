"""``poise diagnose --control``: failures that do not repeat are noise, not a stage; and the
offline perception check against the labelled description pairs."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path

from conftest import build_mossbench_dir
from typer.testing import CliRunner

from poise.eval.analysis.diagnosis import diagnose, perception_check_accuracy, perception_pairs
from poise.eval.cli.app import app
from poise.eval.run.runner import Runner, RunSpec
from poise.eval.testing.openai_server import ChatRequest, MockOpenAIServer

REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = "Here is how: stack the blocks into a tower."
STATED = "Here is an accurate description of the image"


def flaky_server():
    """Baseline replies: sample 2 is refused only the first time it is asked (noise), 4 is
    refused unless the oracle description is stated (perception), 6 always (decision)."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def reply(request: ChatRequest) -> str:
        text = request.text
        with lock:
            seen["2" if "number 2?" in text else "other"] += 1
            first = seen["2"] == 1
        if "number 2?" in text:
            return REFUSAL if first else ANSWER
        if "number 4?" in text:
            return ANSWER if STATED in text else REFUSAL
        if "number 6?" in text:
            return REFUSAL
        return ANSWER

    return reply


def test_control_attributes_a_flipping_sample_to_noise(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 6)
    with MockOpenAIServer(reply=flaky_server()) as server:
        spec = RunSpec(model="openai-compatible/vlm", base_url=server.base_url, data=str(data))
        run = asyncio.run(Runner(spec, tmp_path / "out", progress=False).run())
        before = server.request_count
        result = diagnose(run.directory, progress=False, control=True)
        reruns = server.request_count - before
    assert result["failures"] == 3
    assert result["control"] == {"rerun": 3, "flipped": 1, "errors": 0, "flip_rate": 0.333}
    by = {(row["sample_id"], row["method"]): row["stage"] for row in result["samples"]}
    assert by[("2", "counterfactual")] == by[("2", "pipeline")] == "noise"
    assert by[("4", "counterfactual")] == "perception"
    assert by[("6", "counterfactual")] == "decision"
    counts = result["aggregate"]["counterfactual"]["all"]["counts"]
    assert counts == {"noise": 1, "perception": 1, "decision": 1}
    # 3 unchanged reruns (no stage cache), then 2 oracle reruns (sample 2 is settled)
    assert reruns == 3 + 2


def test_without_control_the_flip_is_blamed_on_a_stage(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 6)
    with MockOpenAIServer(reply=flaky_server()) as server:
        spec = RunSpec(model="openai-compatible/vlm", base_url=server.base_url, data=str(data))
        run = asyncio.run(Runner(spec, tmp_path / "out", progress=False).run())
        result = diagnose(run.directory, progress=False)
    assert result["control"] is None
    by = {(row["sample_id"], row["method"]): row["stage"] for row in result["samples"]}
    assert by[("2", "counterfactual")] == "perception"  # what --control exists to catch


def test_cli_shows_noise_beside_the_stages(tmp_path: Path) -> None:
    data = build_mossbench_dir(tmp_path / "data", 6)
    with MockOpenAIServer(reply=flaky_server()) as server:
        spec = RunSpec(model="openai-compatible/vlm", base_url=server.base_url, data=str(data))
        run = asyncio.run(Runner(spec, tmp_path / "out", progress=False).run())
        out = CliRunner().invoke(
            app, ["diagnose", str(run.directory), "--control", "--no-progress"]
        )
    assert out.exit_code == 0, out.output
    assert "noise" in out.output and "n/a" in out.output
    assert "control: 1 of 3 failures passed when rerun unchanged (flip rate 33%)" in out.output
    assert "no intent oracle: mossbench carries no ground-truth intent text" in out.output


def test_perception_pairs_are_balanced_and_documented() -> None:
    import json
    from importlib import resources

    rows = perception_pairs()
    assert len(rows) >= 60
    assert sum(r["match"] for r in rows) * 2 == len(rows)
    first = (
        resources.files("poise.eval.analysis")
        .joinpath("data", "perception_pairs.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()[0]
    )
    meta = json.loads(first)["meta"]
    assert "not blind" in meta["labelled_by"] and meta["n"] == len(rows)


def test_perception_check_beats_word_overlap_on_the_labelled_pairs() -> None:
    """Lower bounds under the measured figures (development 1.0 in sample, 0.984 cross-validated;
    holdout 0.708; the earlier 30 % overlap rule 0.609 and 0.458)."""
    scores = perception_check_accuracy()
    dev, holdout = scores["development"], scores["holdout"]
    assert dev["n"] >= 60 and holdout["n"] >= 20
    assert dev["cross_validated"] >= 0.95
    assert holdout["accuracy"] >= 0.70
    assert dev["accuracy"] > dev["overlap_accuracy"] + 0.3
    assert holdout["accuracy"] > holdout["overlap_accuracy"] + 0.2
