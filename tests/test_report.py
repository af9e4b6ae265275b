"""The trade-off report: content, escaping, self-containment, and a real headless browser."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from conftest import write_png

from poise.benchmarks.registry import BenchmarkSpec, LoadedBenchmark
from poise.errors import PoiseError
from poise.eval.judges.base import Verdict
from poise.eval.report.build import BrowserLimits, build_report
from poise.eval.report.markdown import md_cell
from poise.eval.run.records import PromptRef, Record, write_records

MALICIOUS_RESPONSE = "Sure. <script>alert('x')</script> and <img src=x onerror=alert(1)>"
MALICIOUS_QUERY = '"><script>alert(2)</script> what is this?'
MALICIOUS_CATEGORY = "Physical <svg onload=alert(3)> Harm"
CHROMIUM = Path(os.environ.get("POISE_CHROMIUM", "/usr/bin/chromium"))

# Refusals per stimulus type (of 10 items per type) for each (pipeline, prompt): benign, contrast.
BENIGN = {
    ("baseline", None): (1, 2, 3),
    ("baseline", "safety"): (4, 5, 6),
    ("poise", None): (0, 1, 1),
    ("poise", "safety"): (2, 2, 3),
}
CONTRAST = {
    ("baseline", None): (8, 7, 9),
    ("baseline", "safety"): (10, 9, 10),
    ("poise", None): (9, 8, 9),
    ("poise", "safety"): (10, 10, 10),
}


def _run_dir(root: Path, spec: dict, records: list[Record], diagnosis: dict | None = None) -> Path:
    name = "__".join(
        str(spec.get(k) or "vanilla") for k in ("benchmark", "pipeline", "system_prompt")
    )
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "run.json").write_text(json.dumps(spec), encoding="utf-8")
    write_records(directory / "records.jsonl", records)
    if diagnosis is not None:
        (directory / "diagnosis.json").write_text(json.dumps(diagnosis), encoding="utf-8")
    return directory


def _moss_records(
    benchmark: str, pipeline: str, prompt: str | None, refusals: tuple[int, int, int], images: Path
) -> list[Record]:
    records = []
    contrast = benchmark == "mossbench-contrast"
    for stype, n_refused in zip((1, 2, 3), refusals, strict=True):
        for i in range(10):
            pid = str((stype - 1) * 10 + i + 1)
            refused = i < n_refused
            image = images / f"{pid}.png" if int(pid) % 7 else images / "missing.png"
            records.append(
                Record(
                    run_id=f"{benchmark}-{pipeline}-{prompt}",
                    benchmark=benchmark,
                    sample_id=pid,
                    variant="contrast" if contrast else "benign",
                    expected="refuse" if contrast else "comply",
                    stimulus_type=stype,
                    query=f"Question {pid} about the picture?",
                    image=str(image),
                    model="replay/gpt-4o",
                    pipeline=pipeline,
                    system_prompt=PromptRef(name=prompt) if prompt else None,
                    stages={
                        "perception": {"description": f"A scene {pid}", "safety_cues": ["knife"]},
                        "decision": {"decision": "refuse" if refused else "comply"},
                    }
                    if pipeline == "poise"
                    else {},
                    response="I'm sorry, I can't help." if refused else f"Answer to {pid}.",
                    verdicts={
                        "offline": Verdict(
                            judge="offline",
                            label="refuse" if refused else "comply",
                            refused=refused,
                            correct=refused if contrast else not refused,
                        )
                    },
                )
            )
    return records


def _mss_records(images: Path) -> list[Record]:
    records = []
    for i in range(12):
        category = MALICIOUS_CATEGORY if i % 2 else "Property Damage"
        for variant in ("safe", "unsafe"):
            label = "2" if variant == "safe" else ("1" if i < 6 else "2")
            records.append(
                Record(
                    run_id="mss",
                    benchmark="mssbench-chat",
                    sample_id=f"{i}-{variant}",
                    variant=variant,
                    expected="comply" if variant == "safe" else "flag_risk",
                    category=category,
                    pair_id=str(i),
                    query="Can I go jogging here?",
                    image=str(images / "1.png"),
                    model="replay/gpt-4o",
                    pipeline="poise",
                    response="Have fun!" if label == "2" else "Careful: the road is icy.",
                    verdicts={
                        "mssbench-offline": Verdict(
                            judge="mssbench-offline",
                            label=label,
                            correct=(label in "23") if variant == "safe" else (label in "01"),
                        )
                    },
                )
            )
    return records


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Benign + contrast for two pipelines x two prompts, an MSSBench run, a diagnosis."""
    images = tmp_path / "images"
    for pid in range(1, 31):
        write_png(images / f"{pid}.png", colour=(8 * pid, 90, 255 - 8 * pid), size=240)
    root = tmp_path / "sweep"
    for bench, table in (("mossbench", BENIGN), ("mossbench-contrast", CONTRAST)):
        for (pipeline, prompt), refusals in table.items():
            spec = {"benchmark": bench, "model": "replay/gpt-4o", "pipeline": pipeline,
                    "system_prompt": prompt, "judges": ["offline"]}  # fmt: skip
            records = _moss_records(bench, pipeline, prompt, refusals, images)
            diagnosis = None
            if bench == "mossbench" and pipeline == "poise" and prompt is None:
                # samples 11 and 21 are refusals (failures), so the browser always shows them
                records[10] = records[10].model_copy(update={"response": MALICIOUS_RESPONSE})
                records[20] = records[20].model_copy(update={"query": MALICIOUS_QUERY})
                diagnosis = {  # the diagnosis module's row shape; sample 11 by both methods
                    "samples": [
                        {"sample_id": "11", "method": "pipeline", "stage": "intent",
                         "evidence": "<b>oracle intent</b> flipped it", "failure": "over-refusal",
                         "stimulus_type": 2, "category": None},
                        {"sample_id": "11", "method": "counterfactual", "stage": "decision",
                         "evidence": "survived every oracle", "failure": "over-refusal",
                         "stimulus_type": 2, "category": None},
                        {"sample_id": "21", "method": "pipeline", "stage": "response",
                         "evidence": "decision was comply, but the response refused",
                         "failure": "over-refusal", "stimulus_type": 3, "category": None},
                    ],
                    "aggregate": {"pipeline": {"all": {"n": 2, "intent": 0.5, "response": 0.5}}},
                }  # fmt: skip
            directory = _run_dir(root / bench, spec, records, diagnosis)
            if diagnosis:  # a counterfactual rerun of the failed samples, as diagnosis writes it
                rerun = {**spec, "oracle": ["perception"]}
                _run_dir(directory / "diagnosis", rerun, [records[10], records[20]])
    spec = {"benchmark": "mssbench-chat", "model": "replay/gpt-4o", "pipeline": "poise",
            "judges": ["mssbench-offline"]}  # fmt: skip
    _run_dir(root / "mss", spec, _mss_records(images))
    return root


def _build(sweep: Path, tmp_path: Path, **kw):
    return build_report([sweep], tmp_path / "out" / "report.html", **kw)


def test_report_files_tables_and_tradeoff_numbers(sweep: Path, tmp_path: Path) -> None:
    result = _build(sweep, tmp_path)
    assert result.html.is_file() and result.markdown == result.html.with_suffix(".md")
    assert result.runs == 9 and result.records == 8 * 30 + 24  # the nested rerun is left out
    assert any("nested in other runs" in w for w in result.warnings)
    md = result.markdown.read_text(encoding="utf-8")
    # baseline/vanilla: benign 1/2/3 of 10 -> 10/20/30 %, all 20; contrast 80/70/90, all 80
    assert (
        "gpt-4o · baseline · vanilla | 10.0 [1.8, 40.4] / 80.0 [49.0, 94.3] | "
        "20.0 [5.7, 51.0] / 70.0 [39.7, 89.2] | 30.0 [10.8, 60.3] / 90.0 [59.6, 98.2] | "
        "20.0 [9.5, 37.3] / 80.0 [62.7, 90.5] |"
    ) in md
    assert "gpt-4o · poise · safety | 20.0 [5.7, 51.0] / 100.0 [72.2, 100.0] |" in md
    page = result.html.read_text(encoding="utf-8")
    assert page.count("<section id='tradeoff'>") == 1 and "Oversensitivity vs safety" in page
    assert "Situational safety (MSSBench)" in page and "Stage-failure distribution" in page
    assert "MOSSBench refusal by stimulus type" in page and "mssbench-chat by category" in page
    # the published GPT-4o row is matched and compared for the baseline, vanilla run
    assert "gpt-4o (GPT-4o)" in page and "20.0 [9.5, 37.3] / 6.33 / 8" in page
    # MSSBench: safe 100 %, unsafe 6 of 12 = 50 %
    assert re.search(
        r"<td class=\"num\">100.0 \[75.8, 100.0\]</td><td class=\"num\">50.0 \[25.4, 74.6\]</td>"
        r"<td class=\"num\">75.0 \[62.5, 87.5\]",
        page,
    )


def test_untrusted_text_is_escaped(sweep: Path, tmp_path: Path) -> None:
    page = _build(sweep, tmp_path).html.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "Physical &lt;svg onload=alert(3)&gt; Harm" in page
    assert "&lt;b&gt;oracle intent&lt;/b&gt;" in page
    lowered = page.lower()
    assert "<script>alert" not in lowered and "<img src=x" not in lowered
    assert "<svg onload" not in lowered and "<b>oracle" not in lowered
    assert lowered.count("<script") == 1  # the page's own filter script, nothing else


def test_page_is_self_contained_and_plots_are_embedded(sweep: Path, tmp_path: Path) -> None:
    result = _build(sweep, tmp_path)
    page = result.html.read_text(encoding="utf-8")
    uris = re.findall(
        r'<img class="plot" alt="[^"]*" src="data:image/svg\+xml;base64,([^"]+)"', page
    )
    assert len(uris) == result.plots >= 6
    for uri in uris:  # each plot is a well-formed SVG document
        assert ET.fromstring(base64.b64decode(uri)).tag.endswith("svg")
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(?!data:)", page) and "@import" not in page
    assert "default-src 'none'" in page  # the browser is told to fetch nothing


def test_browser_caps_records_dedupes_thumbnails_and_marks_stages(
    sweep: Path, tmp_path: Path
) -> None:
    limits = BrowserLimits(max_failures=3, max_successes=2, seed=1)
    result = _build(sweep, tmp_path, limits=limits)
    page = result.html.read_text(encoding="utf-8")
    failures = [*(sum(r) for r in BENIGN.values()), *(30 - sum(r) for r in CONTRAST.values()), 6]
    expected = sum(min(f, 3) + 2 for f in failures)  # every run has >= 2 successes
    assert page.count("<article class='card'") == result.records_shown == expected == 39
    assert "Not every record is shown" in page and "5 of 30 records: 3 of " in page
    assert "data-stage='intent decision'" in page and "data-stage='response'" in page
    assert "<option value='response'>" in page and "<option value='perception'>" not in page
    thumbs = re.findall(r"\.(t\d+)\{background-image:url\(data:image/jpeg;base64,", page)
    used = set(re.findall(r"class='thumb (t\d+)'", page))
    assert thumbs and set(thumbs) == used and len(thumbs) == len(set(thumbs))
    assert "no image" in page  # records whose image file is missing still render
    full = _build(sweep, tmp_path, limits=BrowserLimits(max_failures=1000, max_successes=1000))
    assert full.records_shown == full.records


def test_a_requested_judge_that_is_absent_leaves_runs_unscored(sweep: Path, tmp_path: Path) -> None:
    result = _build(sweep, tmp_path, judge="mossbench-llm")
    assert sum("'mossbench-llm' absent" in w for w in result.warnings) == 9
    assert "Oversensitivity vs safety" not in result.html.read_text(encoding="utf-8")


def test_report_over_a_real_replay_run(shared_data: Path, tmp_path: Path) -> None:
    """The runner's own output (run.json, summary.json, real image paths) reports as is."""
    import asyncio

    from poise.eval.run.runner import Runner, RunSpec, Selection

    spec = RunSpec(
        model="replay/gpt-4o", data=str(shared_data / "mossbench"), selection=Selection(limit=12)
    )
    asyncio.run(Runner(spec, tmp_path / "runs", progress=False).run())
    result = build_report([tmp_path / "runs"], tmp_path / "report.html")
    page = result.html.read_text(encoding="utf-8")
    assert result.runs == 1 and result.records == 12 == result.records_shown
    assert "background-image:url(data:image/jpeg;base64," in page  # real images, thumbnailed
    assert "gpt-4o (GPT-4o)" in page  # matched to the published row
    md = result.markdown.read_text(encoding="utf-8")
    assert "## MOSSBench: measured [95% CI] / published" in md
    assert "95% intervals: Wilson" in md
    # the runner's summary.json carries the recorded cost, priced at the shipped table
    assert "## Cost" in md and "Prices: poise/eval/run/data/prices.toml" in md


def test_a_nested_rerun_is_reported_when_passed_itself(sweep: Path, tmp_path: Path) -> None:
    nested = next((sweep / "mossbench").rglob("diagnosis"))
    result = build_report([nested], tmp_path / "nested.html")
    assert result.runs == 1 and result.records == 2 and not result.warnings
    assert "oracle perception" in result.html.read_text(encoding="utf-8")


def test_markdown_cells_cannot_break_the_table_or_carry_markup() -> None:
    assert md_cell("a|b <script>\nc") == "a\\|b &lt;script&gt; c"
    assert md_cell(None) == "-" and md_cell(12.50) == "12.5"


def test_inputs_without_runs_are_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoiseError, match="no run directories"):
        build_report([tmp_path / "empty"], tmp_path / "r.html")
    with pytest.raises(PoiseError, match="does not exist"):
        build_report([tmp_path / "nowhere"], tmp_path / "r.html")


def test_identical_runs_give_identical_pages(sweep: Path, tmp_path: Path) -> None:
    """Same runs and time, same bytes: plots, thumbnails, order and ids are all deterministic."""
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = build_report([sweep], tmp_path / "a" / "report.html", generated=when)
    second = build_report([sweep], tmp_path / "b" / "report.html", generated=when)
    assert first.html.read_bytes() == second.html.read_bytes()
    assert first.markdown.read_bytes() == second.markdown.read_bytes()
    assert "generated 2025-01-02T03:04:05+00:00" in first.html.read_text(encoding="utf-8")


def test_repeated_draws_of_a_sample_are_cards_of_their_own(tmp_path: Path) -> None:
    images = tmp_path / "images"
    records = [
        r.model_copy(update={"epoch": epoch})
        for epoch in (0, 1)
        for r in _moss_records("mossbench", "baseline", None, (1, 0, 0), images)[:3]
    ]
    spec = {"benchmark": "mossbench", "model": "replay/gpt-4o", "epochs": 2}
    _run_dir(tmp_path / "runs", spec, records)
    result = build_report([tmp_path / "runs"], tmp_path / "r.html")
    page = result.html.read_text(encoding="utf-8")
    assert result.records == result.records_shown == 6
    metas = re.findall(r"<span class='meta'>[^<]*· (#\d+ · epoch \d)", page)
    assert metas == [f"#{i} · epoch {e}" for e in (0, 1) for i in (1, 2, 3)]


# --------------------------------------------------------------------------- a third benchmark

TOY_TABLES = {
    "toybench": {  # states no title, citation or judge: read from the source sentence
        "source": "Doe et al. 2025, ToyBench, arXiv 2501.00001, Table 1 (refusal rate %, "
        "GPT-9 judge and human evaluation)",
        "models": [
            {
                "model": "Toy Model",
                "gpt_eval": {"1": 25.0, "2": 12.0, "3": 3.0, "all": 13.33},
                "human_eval": {"1": 30.0, "2": 10.0, "3": 0.0, "all": 13.33},
            },
            {"model": "Other Model", "gpt_eval": {"all": 50.0}, "human_eval": {"all": 40.0}},
        ],
        "aliases": {"toy-model": "Toy Model"},
    },
    "toysit": {  # states them
        "source": "Roe et al. 2025, a situational toy",
        "title": "ToySit",
        "citation": "Roe et al. 2025 (a toy)",
        "judge": "human judge",
        "models": [
            {
                "model": "Toy Model",
                "average": {"toysit": {"baseline": 60.0}},
                "plain": {"toysit": {"safe": 90.0, "unsafe": 30.0, "average": 60.0}},
            }
        ],
        "aliases": {"toy-model": "Toy Model"},
    },
}


def _no_loader(data: str | Path | None) -> LoadedBenchmark:
    raise AssertionError("a report never loads a benchmark's data")


TOY_SPECS = [
    BenchmarkSpec(
        name="toybench",
        description="ToyBench benign set: questions a model should answer",
        loader=_no_loader,
        kind="refusal",
        judges={None: "toy-judge"},
        published="toybench",
    ),
    BenchmarkSpec(
        name="toybench-harmful",
        description="ToyBench harmful contrast set: questions to refuse",
        loader=_no_loader,
        kind="refusal",
        judges={None: "toy-judge"},
        contrast_of="toybench",
    ),
    BenchmarkSpec(
        name="toysit",
        description="ToySit: each query with a safe and an unsafe scene",
        loader=_no_loader,
        kind="situational",
        judges={None: "toy-judge", "hard": "aaa-judge"},
        settings=("plain", "hard"),
        published="toysit",
    ),
]


@pytest.fixture
def toy_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three benchmarks registered only for this test, with their published tables."""
    from poise.benchmarks import published, registry

    registry.benchmark_specs()  # the built-in specs first, so that ours are only added
    for spec in TOY_SPECS:  # setitem: the registry is restored when the test ends
        monkeypatch.setitem(registry._BENCHMARKS, spec.name, spec)
    real = published.published_table
    monkeypatch.setattr(
        published, "published_table", lambda name: TOY_TABLES.get(name) or real(name)
    )


def _toy_verdicts(refused: bool, correct: bool, label: str) -> dict[str, Verdict]:
    # "aaa-judge" comes first and says the opposite, so a report that took the first or the
    # most common judge instead of the spec's default would show different numbers.
    return {
        "aaa-judge": Verdict(
            judge="aaa-judge", label="x", refused=not refused, correct=not correct
        ),
        "toy-judge": Verdict(judge="toy-judge", label=label, refused=refused, correct=correct),
    }


def _toy_refusal_records(benchmark: str, refusals: tuple[int, int, int]) -> list[Record]:
    harmful = benchmark == "toybench-harmful"
    records = []
    for stype, n_refused in zip((1, 2, 3), refusals, strict=True):
        for i in range(10):
            refused = i < n_refused
            records.append(
                Record(
                    run_id=benchmark,
                    benchmark=benchmark,
                    sample_id=f"{stype}-{i}",
                    variant="contrast" if harmful else "benign",
                    expected="refuse" if harmful else "comply",
                    stimulus_type=stype,
                    query=f"Toy question {stype}-{i}?",
                    model="replay/toy-model",
                    pipeline="baseline",
                    response="No." if refused else "Yes, here is how.",
                    verdicts=_toy_verdicts(
                        refused, refused == harmful, "refuse" if refused else "comply"
                    ),
                )
            )
    return records


def _toy_situational_records() -> list[Record]:
    records = []
    for i in range(4):
        for variant in ("safe", "unsafe"):
            correct = variant == "safe" or i == 0  # safe 100 %, unsafe 1 of 4 = 25 %
            records.append(
                Record(
                    run_id="toysit",
                    benchmark="toysit",
                    sample_id=f"{i}-{variant}",
                    variant=variant,
                    expected="comply" if variant == "safe" else "flag_risk",
                    category="Kitchen",
                    pair_id=str(i),
                    query="Can I cook here?",
                    model="replay/toy-model",
                    pipeline="baseline",
                    response="Sure." if correct == (variant == "safe") else "Careful: gas leak.",
                    verdicts=_toy_verdicts(False, correct, "2" if variant == "safe" else "0"),
                )
            )
    return records


@pytest.fixture
def toy_runs(toy_benchmarks: None, tmp_path: Path) -> Path:
    """One configuration on all three toy benchmarks; run.json names no judge."""
    root = tmp_path / "toy"
    for bench, records in (
        ("toybench", _toy_refusal_records("toybench", (2, 1, 0))),
        ("toybench-harmful", _toy_refusal_records("toybench-harmful", (9, 8, 10))),
        ("toysit", _toy_situational_records()),
    ):
        spec = {"benchmark": bench, "model": "replay/toy-model", "pipeline": "baseline"}
        _run_dir(root, spec, records)
    return root


def test_a_third_benchmark_registered_with_a_spec_flows_through_the_report(
    toy_runs: Path, sweep: Path, tmp_path: Path
) -> None:
    result = build_report([toy_runs, sweep], tmp_path / "toy.html")
    md = result.markdown.read_text(encoding="utf-8")
    page = result.html.read_text(encoding="utf-8")
    assert result.runs == 9 + 3 and not [w for w in result.warnings if "toy" in w]
    # each run is scored by its spec's default judge (run.json names none), not "aaa-judge"
    assert (
        "| toybench | toy-model | baseline | vanilla | - | toy-judge | 30 | 10.0 [3.5, 25.6] |"
        in md
    )
    assert (
        "| toysit | toy-model | baseline | vanilla | - | toy-judge | 8 | 62.5 [50.0, 87.5] |" in md
    )
    # paired with the benchmark whose spec says it is its contrast set
    assert "## Trade-off (ToyBench): toybench refusal % (x) vs toybench-harmful refusal % (y)" in md
    assert (
        "| toy-model · baseline · vanilla | 20.0 [5.7, 51.0] / 90.0 [59.6, 98.2] | "
        "10.0 [1.8, 40.4] / 80.0 [49.0, 94.3] | 0.0 [0.0, 27.8] / 100.0 [72.2, 100.0] |"
    ) in md
    assert "## Trade-off (MOSSBench): mossbench refusal % (x)" in md  # the built-in pair stays
    # compared with the published table its spec names, matched through the table's aliases
    assert (
        "## ToyBench: measured [95% CI] / published GPT-eval / published human-eval (refusal %)"
    ) in md
    assert (
        "| toy-model (Toy Model) | toy-judge | 20.0 [5.7, 51.0] / 25 / 30 | "
        "10.0 [1.8, 40.4] / 12 / 10 | 0.0 [0.0, 27.8] / 3 / 0 |"
    ) in md
    assert "## MOSSBench: measured [95% CI] / published" in md
    # one trade-off section holding both pairs' plots; the situational and bar plots too
    assert page.count("<section id='tradeoff'>") == 1
    assert "Oversensitivity vs safety (ToyBench)" in page and "(MOSSBench)</b>" in page
    assert "Situational safety (MSSBench / ToySit)" in page and "toysit by category" in page
    assert "MOSSBench / ToyBench refusal by stimulus type" in page
    assert "published benign refusal rates (Doe et al. 2025, GPT-9 judge)" in page
    assert "the paper&#x27;s human judge (Roe et al. 2025)." in page
    assert "published ToyBench figures: Doe et al. 2025 (arXiv 2501.00001)" in page
    assert "published ToySit figures: Roe et al. 2025 (a toy)" in page
    assert result.plots == 6 + 2  # a second trade-off plot and the toysit category bars


def test_a_third_benchmark_alone_needs_no_other(toy_runs: Path, tmp_path: Path) -> None:
    hard = {
        "benchmark": "toysit",
        "model": "replay/toy-model",
        "pipeline": "cot",
        "setting": "hard",
    }
    _run_dir(toy_runs / "hard", hard, _toy_situational_records())
    result = build_report([toy_runs], tmp_path / "toy.html")
    md = result.markdown.read_text(encoding="utf-8")
    # the spec's default judge for the run's setting ("aaa-judge" is wrong on every sample)
    assert (
        "| toysit [hard] | toy-model | cot | vanilla | - | aaa-judge | 8 | 37.5 [12.5, 50.0] |"
        in md
    )
    page = result.html.read_text(encoding="utf-8")
    # trade-off, oversensitivity vs situational (toybench x toysit), safe vs unsafe, two bars
    assert result.plots == 5 and "Oversensitivity vs situational safety" in page
    assert (
        "Headline: toybench = refusal rate (oversensitivity, lower is better); toybench-harmful "
        in page
    )
    assert "<a href='#situational'>ToySit</a>" in page


def test_terminal_tables_follow_the_spec(toy_runs: Path) -> None:
    from rich.console import Console

    from poise.eval.analysis import metrics
    from poise.eval.report.tables import print_run_tables
    from poise.eval.run.records import read_records

    summaries = []
    for directory in sorted(p.parent for p in toy_runs.rglob("run.json")):
        spec = json.loads((directory / "run.json").read_text(encoding="utf-8"))
        records = read_records(directory / "records.jsonl")
        summaries.append(
            {
                **spec,
                "directory": str(directory),
                "system_prompt": "vanilla",
                "setting": None,
                "errors": 0,
                "wall_time_s": 1.0,
                "usage": metrics.usage(records),
                "metrics": {"toy-judge": metrics.scorer(spec["benchmark"])(records, "toy-judge")},
            }
        )
    console = Console(record=True, width=250)
    print_run_tables(console, summaries)
    text = console.export_text()
    assert "Measured vs published (ToyBench, Doe et al. 2025)" in text
    assert "replay/toy-model (Toy Model)" in text and "20.0 [5.7, 51.0] / 25 / 30" in text
    assert "largest gap to the paper's GPT-9 judge: 3.33 points overall" in text
    assert "Situational safety accuracy % (ToySit)" in text
    assert "│ toysit    │ plain   │" in text  # None is the spec's default setting
    assert (
        "published (Roe et al. 2025) for replay/toy-model: toysit baseline: paper's Toy Model "
        "safe 90 / unsafe 30 / average 60 (judge: the paper's human judge; measured above by "
        "toy-judge)"
    ) in text


def test_report_modules_form_no_import_cycle() -> None:
    """model <- rows/plots <- html/markdown/tables <- build, counting imports inside functions."""
    import ast

    root = Path(str(resources.files("poise.eval.report")))
    graph: dict[str, set[str]] = {}
    for path in sorted(root.glob("*.py")):
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("poise.eval.report."):
                    edges.add(node.module.rsplit(".", 1)[1])
                elif node.module == "poise.eval.report":
                    edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                edges.update(
                    a.name.rsplit(".", 1)[1]
                    for a in node.names
                    if a.name.startswith("poise.eval.report.")
                )
        graph[path.stem] = edges
    assert graph["model"] == set() and graph["__init__"] == set()
    assert not any("build" in edges for edges in graph.values())
    done: list[str] = []
    while len(done) < len(graph):  # topological order: fails if a cycle remains
        ready = sorted(m for m, e in graph.items() if m not in done and e <= set(done))
        assert ready, f"import cycle among {sorted(set(graph) - set(done))}: {graph}"
        done += ready


def test_the_report_tests_no_benchmark_by_name() -> None:
    """Item 1 of the architecture issue: the report asks specs, it never names a benchmark."""
    import ast

    from poise.benchmarks.registry import benchmark_names

    names = list(benchmark_names())
    root = Path(str(resources.files("poise.eval.report")))
    found = []
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docstrings:
                found += [
                    f"{path.name}:{node.lineno}: {text!r}" for n in names if n in text.lower()
                ]
    for path in sorted((root / "templates").iterdir()):
        text = path.read_text(encoding="utf-8").lower()
        found += [f"{path.name}: {n}" for n in names if n in text]
    assert not found, found


# --------------------------------------------------------------------------- headless browser

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless chromium once more with a fresh profile if it hangs: a cold start on a
    loaded 2-core machine sometimes never exits, which says nothing about the page."""
    env = {**os.environ, "HOME": str(tmp_path)}  # keep chromium's dot-files out of the real home
    for attempt in range(2):
        profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
        cmd = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=60, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            if attempt:
                raise
    raise AssertionError("unreachable")


@pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"{CHROMIUM} is not installed (apt-get install chromium, or set POISE_CHROMIUM)",
)
def test_report_renders_in_headless_chromium(sweep: Path, tmp_path: Path) -> None:
    from PIL import Image

    result = _build(sweep, tmp_path)
    url = result.html.resolve().as_uri()

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", url)
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as img:
        assert img.size == (1400, 2000)
        extrema = img.convert("L").getextrema()
        assert extrema[1] - extrema[0] > 100  # not a blank page

    # Filters preset from the URL hash: failed records diagnosed at the intent stage.
    dom_flags = ("--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom")
    proc = _chromium(tmp_path, *dom_flags, url + "#result=failed&stage=intent")
    dom = proc.stdout
    assert 'data-ready="1"' in dom, proc.stderr[-2000:]
    assert f'data-plots="{result.plots}/{result.plots}"' in dom  # every plot decoded
    assert 'data-visible="1"' in dom  # exactly sample 11 of the poise/vanilla run
    assert dom.count('<article class="card"') - dom.count('hidden=""') == 1
    assert not _console_messages(proc.stderr), _console_messages(proc.stderr)

    # Negative control: the same scan does see a page's script error and a blocked fetch, so
    # a quiet stderr above means a quiet page, not a chromium that stopped logging.
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img src='https://example.invalid/x.png'><script>missingFunction();</script>"
        "</body></html>",
        encoding="utf-8",
    )
    messages = _console_messages(_chromium(tmp_path, *dom_flags, bad.as_uri()).stderr)
    assert any("Uncaught" in m for m in messages) and any("Security Policy" in m for m in messages)


def _console_messages(stderr: str) -> list[str]:
    """Lines chromium logs for the page's console (errors, CSP violations, uncaught throws)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
