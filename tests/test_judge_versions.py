"""Judge versions: every verdict names the version of the judge that gave it; re-judging
replaces verdicts of an older version (and says so); figures never mix two versions; the
``mossbench-llm`` prompt carries the paper's five guidelines in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from poise.agents.prompts import get_prompt
from poise.errors import PoiseError
from poise.eval.analysis import metrics
from poise.eval.judges.base import get_judge
from poise.eval.judges.refusal import VERSION
from poise.eval.judges.rejudge import rejudge
from poise.eval.run.records import RECORDS_FILE, read_records, write_records
from poise.eval.run.runner import Runner, RunSpec, Selection, summarize


def _run(out: Path, limit: int = 6) -> Path:
    spec = RunSpec(model="replay/claude-3-haiku", selection=Selection(limit=limit))
    return asyncio.run(Runner(spec, out, progress=False).run()).directory


def _age_verdicts(directory: Path, version: str | None, count: int | None = None) -> None:
    """Pretend that (some of) the offline verdicts came from another version of the rules."""
    path = directory / RECORDS_FILE
    records = read_records(path)
    for index, record in enumerate(records):
        if count is not None and index >= count:
            break
        record.verdicts["offline"] = record.verdicts["offline"].model_copy(
            update={"version": version, "label": "refuse", "refused": True}
        )
    write_records(path, records)


def test_every_verdict_carries_its_judges_version(tmp_path: Path) -> None:
    directory = _run(tmp_path / "run")
    records = read_records(directory / RECORDS_FILE)
    assert records and all(r.verdicts["offline"].version == VERSION for r in records)
    summary = summarize(directory)
    assert summary["metrics"]["offline"]["judge_version"] == VERSION


def test_rejudging_replaces_an_older_version_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _run(tmp_path / "run")
    before = {
        r.sample_id: r.verdicts["offline"].label for r in read_records(directory / RECORDS_FILE)
    }
    _age_verdicts(directory, "0ld0ld0ld0ld", count=2)
    judged = asyncio.run(rejudge(directory, get_judge("offline")))
    assert judged == 2
    err = capsys.readouterr().err
    assert "replacing 2 offline verdicts of an older version (2 of 0ld0ld0ld0ld)" in err
    after = read_records(directory / RECORDS_FILE)
    assert all(r.verdicts["offline"].version == VERSION for r in after)
    assert {r.sample_id: r.verdicts["offline"].label for r in after} == before


def test_a_resumed_run_rejudges_unversioned_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    directory = _run(out)
    _age_verdicts(directory, None)
    _run(out)
    assert "unversioned" in capsys.readouterr().err
    assert all(
        r.verdicts["offline"].version == VERSION for r in read_records(directory / RECORDS_FILE)
    )


def test_figures_refuse_to_mix_two_versions(tmp_path: Path) -> None:
    directory = _run(tmp_path / "run")
    _age_verdicts(directory, "0ld0ld0ld0ld", count=1)
    records = read_records(directory / RECORDS_FILE)
    with pytest.raises(PoiseError, match="2 versions of judge offline.*poise judge"):
        metrics.refusal_rates(records, "offline")


def test_llm_judge_versions_are_their_prompts_hash() -> None:
    prompt = get_prompt("mossbench-refusal", "judges")
    assert len(prompt.sha256) == 16


def test_mossbench_llm_prompt_follows_the_papers_judge() -> None:
    prompt = get_prompt("mossbench-refusal", "judges")
    text = prompt.text
    # The image is described first, then the score, then the reason.
    assert text.index("Describe the image") < text.index("complies with the user's question")
    assert text.index("Description:") < text.index("Score:") < text.index("Reason:")
    # All five guidelines, in the paper's order.
    order = [
        "Any direct attempt to answer",
        "confirm or clarify",
        "cannot, in the sense of will not",
        '"unfortunately", "I\'m sorry", "As an AI" or "it\'s not appropriate"',
        "neither acknowledges nor addresses any safety concern",
    ]
    positions = [text.index(phrase) for phrase in order]
    assert positions == sorted(positions)
    assert "Offering only alternative suggestions" in text
    # The front matter maps each sentence to the guideline it carries, and is not sent.
    for guideline in ("G1", "G2", "G3", "G4", "G5"):
        assert guideline in prompt.path.read_text(encoding="utf-8")
        assert guideline not in text
