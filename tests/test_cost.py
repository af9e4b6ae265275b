"""Cost before a run (offline estimates) and after it (recorded usage at the price table)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build_mossbench_dir, write_png

from poise.agents.calls import Call
from poise.errors import PoiseError
from poise.eval.judges.base import Verdict
from poise.eval.run import cost
from poise.eval.run.records import Record
from poise.eval.run.runner import Runner, RunSpec
from poise.eval.run.sweep import plan

N = 6


@pytest.fixture(scope="module")
def mossbench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mossbench_dir(tmp_path_factory.mktemp("cost") / "mossbench", N)


def samples_of(spec: RunSpec) -> list:
    return Runner(spec, Path("unused")).prepare()[1]


def spec(data: Path, **fields: object) -> RunSpec:
    return RunSpec(model="openai/gpt-4o", data=str(data), **fields)


# -- image token rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "size", "tokens"),
    [
        # OpenAI's own examples: 1024 x 1024 -> 768 x 768, 4 tiles; 2048 x 4096 -> 768 x 1536, 6.
        ("openai/gpt-4o", (1024, 1024), 85 + 170 * 4),
        ("openai/gpt-4o", (2048, 4096), 85 + 170 * 6),
        ("openai/gpt-4o", (512, 512), 85 + 170),
        ("openai/gpt-4o-mini", (512, 512), 2833 + 5667),
        # Anthropic: w * h / 750; 1000 x 1000 is ~1334 in its docs; large images cap near 1600.
        ("anthropic/claude-3-5-sonnet-latest", (1000, 1000), 1334),
        ("anthropic/claude-3-5-sonnet-latest", (200, 200), 54),
        ("anthropic/claude-3-opus-20240229", (4000, 3000), 1600),
        # Gemini 2.x: 258 up to 384 px, 768-px tiles above; Gemini 1.5: 258 per image.
        ("google/gemini-2.0-flash", (384, 384), 258),
        ("google/gemini-2.0-flash", (1024, 768), 258 * 2),
        ("google/gemini-1.5-pro", (2000, 2000), 258),
    ],
)
def test_image_tokens_follow_each_providers_rule(
    model: str, size: tuple[int, int], tokens: int
) -> None:
    assert cost.image_tokens(model, *size) == tokens


def test_image_size_is_read_from_the_header(tmp_path: Path) -> None:
    path = write_png(tmp_path / "a.png", size=40)
    assert cost.image_size(path) == (40, 40)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert cost.image_size(tmp_path / "bad.png") is None


def test_text_tokens_use_the_family_rule() -> None:
    assert cost.text_tokens("x" * 400, "openai/gpt-4o") == 100
    assert cost.text_tokens("x" * 350, "anthropic/claude-3-haiku-20240307") == 100


# -- estimates --------------------------------------------------------------------------------


def test_poise_estimate_is_four_calls_per_sample(mossbench: Path) -> None:
    run = spec(mossbench, pipeline="poise")
    estimate = cost.estimate_run(run, samples_of(run))
    assert estimate.samples == N
    assert estimate.calls == 4 * N
    assert {line.stage for line in estimate.lines} == {
        "perception",
        "intent",
        "decision",
        "response",
    }
    assert all(line.calls == N for line in estimate.lines)
    assert estimate.input_tokens > 0 and estimate.output_tokens > 0
    assert estimate.cost.priced and not estimate.cost.unpriced
    assert estimate.cost_cap.usd > estimate.cost.usd  # the ceiling: every call at max_tokens


def test_baseline_is_one_call_and_an_oracle_skips_its_stage(mossbench: Path) -> None:
    baseline = spec(mossbench)
    assert cost.estimate_run(baseline, samples_of(baseline)).calls == N
    oracle = spec(mossbench, pipeline="poise", oracle=["perception"])
    estimate = cost.estimate_run(oracle, samples_of(oracle))
    assert estimate.calls == 3 * N
    assert "perception" not in {line.stage for line in estimate.lines}


def test_images_are_counted_by_the_providers_rule(mossbench: Path) -> None:
    run = spec(mossbench)
    text_only = cost.estimate_run(
        run, [s.model_copy(update={"image": type(s.image)()}) for s in samples_of(run)]
    )
    with_images = cost.estimate_run(run, samples_of(run))
    # 24 x 24 px fixtures: one 512-px tile each, 85 + 170 tokens, once per call.
    assert with_images.input_tokens - text_only.input_tokens == N * 255


def test_sweep_shares_stages_as_the_readme_states(mossbench: Path) -> None:
    k = 3
    base = spec(mossbench)
    cells = plan(
        benchmarks=["mossbench"],
        models=["openai/gpt-4o"],
        pipelines=["poise"],
        system_prompts=[None, "safety", "calibrated"],
        base=base,
    )
    samples = samples_of(base)
    estimates = cost.estimate_sweep([(cell, samples) for cell in cells])
    whole = cost.total(estimates)
    assert whole.calls == N * (
        2 + 2 * k
    )  # perception and intent once, decision and response per prompt
    assert whole.reused_calls == 4 * N * k - N * (2 + 2 * k)
    assert [e.calls for e in estimates] == [4 * N, 2 * N, 2 * N]
    rows = cost.estimate_rows(estimates)
    assert len(rows) == k + 1 and rows[-1][0] == "total"
    assert rows[-1][2] == f"{N * (2 + 2 * k):,}"


def test_prompt_on_an_early_stage_shares_nothing_downstream(mossbench: Path) -> None:
    """A system prompt on perception changes what every later stage reads: no reuse."""
    base = spec(mossbench, pipeline="poise", prompt_stages=["perception"])
    cells = [base, base.model_copy(update={"system_prompt": "safety"})]
    estimates = cost.estimate_sweep([(cell, samples_of(base)) for cell in cells])
    assert cost.total(estimates).calls == 8 * N


def test_cells_with_other_sampling_parameters_share_nothing(mossbench: Path) -> None:
    """The runner scopes the stage cache by non-default parameters; the estimate does too."""
    base = spec(mossbench, pipeline="poise")
    hot = base.model_copy(update={"model_params": {"temperature": 1.0}})
    same = cost.estimate_sweep([(base, samples_of(base)), (base, samples_of(base))])
    other = cost.estimate_sweep([(base, samples_of(base)), (hot, samples_of(base))])
    assert cost.total(same).calls == 4 * N
    assert cost.total(other).calls == 8 * N


def test_output_follows_max_tokens_and_epochs_multiply(mossbench: Path) -> None:
    run = spec(mossbench, model_params={"max_tokens": 100})
    estimate = cost.estimate_run(run, samples_of(run))
    assert estimate.output_cap_tokens == 100 * N
    assert estimate.output_tokens == round(cost.ANSWER_FRACTION * 100) * N
    drawn = run.model_copy(update={"epochs": 3, "model_params": {"temperature": 1.0}})
    assert cost.estimate_run(drawn, samples_of(run)).calls == 3 * N


def test_llm_judge_calls_are_included(mossbench: Path) -> None:
    run = spec(mossbench, judges=["offline", "mossbench-llm"], judge_model="openai/gpt-4-turbo")
    estimate = cost.estimate_run(run, samples_of(run))
    assert estimate.calls == 2 * N
    judge = next(line for line in estimate.lines if line.stage == "judge:mossbench-llm")
    assert judge.model == "openai/gpt-4-turbo" and judge.calls == N
    assert judge.input_tokens > N * 255  # it sees the image and the answer


def test_trace_limit_scales_calls_exactly(mossbench: Path) -> None:
    run = spec(mossbench, pipeline="poise")
    full = cost.estimate_run(run, samples_of(run))
    part = cost.estimate_run(run, samples_of(run), trace_limit=2)
    assert part.calls == full.calls
    assert any("traced 2 of" in note for note in part.notes)


def test_unknown_model_says_no_price_not_zero(mossbench: Path) -> None:
    run = spec(mossbench).model_copy(update={"model": "openai-compatible/my-vlm"})
    estimate = cost.estimate_run(run, samples_of(run))
    assert estimate.calls == N
    assert not estimate.cost.priced and estimate.cost.unpriced == ("openai-compatible/my-vlm",)
    assert str(estimate.cost) == "no price (openai-compatible/my-vlm)"
    assert estimate.as_dict()["cost"]["usd"] is None
    mixed = cost.total([estimate, cost.estimate_run(spec(mossbench), samples_of(run))])
    assert mixed.cost.priced and str(mixed.cost).endswith("+ no price for openai-compatible/my-vlm")


# -- prices -----------------------------------------------------------------------------------


def test_packaged_prices_load_and_the_most_specific_pattern_wins() -> None:
    prices = cost.load_prices()
    assert prices.price("openai/gpt-4o").input == 2.50
    assert prices.price("openai/gpt-4o-mini").input == 0.15
    assert prices.price("openai/gpt-4o-2024-05-13").input == 5.00
    assert prices.price("anthropic/claude-3-opus-20240229").output == 75.00
    assert prices.price("google/gemini-2.0-flash").input == 0.10
    assert prices.price("google/models/gemini-1.5-pro").input == 1.25
    assert prices.price("openai/gpt-4o", batch=True).input == pytest.approx(1.25)
    assert prices.price("hf/Qwen/Qwen2-VL-2B-Instruct").of(10**6, 10**6) == 0.0
    assert prices.price("openai-compatible/x") is None
    assert prices.price("openai/no-such-model") is None
    assert set(prices.dates()) >= {"openai", "anthropic", "google"}


GOOD = """
schema = 1
[providers.openai-compatible]
as_of = 2025-01-31
source = "my provider's invoice"
[[providers.openai-compatible.models]]
match = "Qwen/*"
input = 0.2
output = 0.6
"""


def test_user_price_file_replaces_the_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(GOOD, encoding="utf-8")
    prices = cost.load_prices(path)
    price = prices.price("openai-compatible/Qwen/Qwen2-VL-7B-Instruct")
    assert (price.input, price.output) == (0.2, 0.6)
    assert price.of(1_000_000, 500_000) == pytest.approx(0.5)
    assert prices.price("openai/gpt-4o") is None  # replaced, not merged


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("schema = 1\n[providers.x\n", "not valid TOML"),
        (GOOD.replace("schema = 1", ""), "schema = 1"),
        (GOOD.replace("as_of = 2025-01-31", 'as_of = "January"'), "as_of must be a date"),
        (GOOD.replace("input = 0.2", "input = -1"), "models[0].input must be USD per million"),
        (GOOD.replace("output = 0.6", 'output = "cheap"'), "models[0].output"),
        (GOOD.replace('match = "Qwen/*"', "match = 3"), "models[0].match"),
        (GOOD.replace("input = 0.2", "input = 0.2\ncurrency = 'EUR'"), "unknown key 'currency'"),
        (GOOD.replace('source = "my provider\'s invoice"', ""), "source must say"),
        ("schema = 1\n", "has no [providers.NAME] table"),
    ],
)
def test_bad_user_price_file_is_one_line_naming_the_key(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PoiseError) as caught:
        cost.load_prices(path)
    message = str(caught.value)
    assert says in message and str(path) in message and "\n" not in message


def test_missing_price_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PoiseError, match="no such file"):
        cost.load_prices(tmp_path / "nope.toml")


# -- cost after -------------------------------------------------------------------------------


def record(sample_id: str, calls: list[Call], verdicts: dict | None = None) -> Record:
    return Record(
        run_id="r", benchmark="mossbench", sample_id=sample_id, expected="comply", query="q?",
        model="openai/gpt-4o", pipeline="poise", calls=calls, verdicts=verdicts or {},
    )  # fmt: skip


def call(stage: str, tokens_in: int | None, tokens_out: int | None, cached: bool = False) -> Call:
    return Call(
        stage=stage, model="openai/gpt-4o", messages=[], input_tokens=tokens_in,
        output_tokens=tokens_out, cached=cached,
    )  # fmt: skip


def test_recorded_cost_prices_reported_usage() -> None:
    records = [
        record("1", [call("perception", 1000, 100), call("response", 2000, 400)]),
        record("2", [call("perception", 1000, 100, cached=True), call("response", None, None)]),
    ]
    result = cost.recorded_cost(records, cost.load_prices())
    assert (result.calls, result.reused_calls, result.calls_without_usage) == (3, 1, 1)
    assert (result.input_tokens, result.output_tokens) == (3000, 500)
    assert result.cost.usd == pytest.approx((3000 * 2.50 + 500 * 10.00) / 1e6)
    batch = cost.recorded_cost(records, cost.load_prices(), batch=True)
    assert batch.cost.usd == pytest.approx(result.cost.usd / 2)


class VerdictWithUsage(Verdict):
    """A verdict as it will be once LLM judges record their usage (proposed field names)."""

    input_tokens: int | None = None
    output_tokens: int | None = None


def test_recorded_cost_counts_judge_usage_when_verdicts_carry_it() -> None:
    verdict = VerdictWithUsage(
        judge="mossbench-llm", label="comply", model="openai/gpt-4-turbo", input_tokens=1000
    )
    offline = Verdict(judge="offline", label="comply")
    verdicts = {"mossbench-llm": verdict, "offline": offline}
    result = cost.recorded_cost([record("1", [], verdicts)], cost.load_prices())
    assert result.calls == 1 and result.cost.usd == pytest.approx(1000 * 10.00 / 1e6)


def test_cost_summary_sets_recorded_beside_the_saved_estimate(
    tmp_path: Path, mossbench: Path
) -> None:
    run = spec(mossbench)
    estimate = cost.estimate_run(run, samples_of(run))
    cost.save_estimate(tmp_path, estimate)
    records = [record(str(i), [call("baseline", 300, 200)]) for i in range(N)]
    entry = cost.cost_summary(tmp_path, records)
    assert entry["estimate"]["calls"] == N
    assert entry["recorded"]["calls"] == N
    assert entry["recorded_vs_estimate"]["calls"] == 1.0
    assert entry["recorded_vs_estimate"]["cost"] > 0
    json.dumps(entry)  # summary.json-ready
    row = cost.cost_rows([{"directory": str(tmp_path), "cost": entry}])[0]
    assert row[1] == f"{N:,}" and row[-1].startswith("$")
    assert cost.cost_summary(tmp_path / "none", records)["estimate"] is None
    assert cost.cost_summary(tmp_path, records, run_id="another")["estimate"] is None
    assert cost.cost_summary(tmp_path, records, run_id=run.run_id)["estimate"] is not None
    whole = cost.cost_total([{"cost": entry}, {"cost": entry}])
    assert whole["recorded"]["calls"] == 2 * N and whole["estimate"]["calls"] == 2 * N
    assert whole["recorded"]["cost"]["usd"] == pytest.approx(2 * entry["recorded"]["cost"]["usd"])
