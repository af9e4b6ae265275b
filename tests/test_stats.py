"""Intervals and tests against published values and closed forms; intervals in summaries."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from poise.eval.analysis import metrics, stats
from poise.eval.judges.base import Verdict
from poise.eval.run.records import Record


def wilson_formula(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval, written out: the published closed form."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@pytest.mark.parametrize(
    ("k", "n"), [(0, 1), (1, 1), (0, 10), (5, 10), (10, 10), (3, 7), (58, 100), (299, 300)]
)
@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99])
def test_wilson_matches_scipy(k: int, n: int, confidence: float) -> None:
    from scipy.stats import binomtest

    estimate = stats.wilson(k, n, confidence)
    assert estimate is not None
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert estimate.low == pytest.approx(ci.low, abs=1e-12)
    assert estimate.high == pytest.approx(ci.high, abs=1e-12)
    assert estimate.value == k / n and estimate.n == n
    assert estimate.method == (
        "Wilson 95%" if confidence == 0.95 else f"Wilson {100 * confidence:g}%"
    )


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score).
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombes_published_table(k: int, n: int, low: float, high: float) -> None:
    estimate = stats.wilson(k, n)
    assert estimate is not None
    assert (round(estimate.low, 4), round(estimate.high, 4)) == (low, high)


def test_wilson_of_nothing_is_none_and_bad_counts_are_refused() -> None:
    assert stats.wilson(0, 0) is None
    with pytest.raises(ValueError):
        stats.wilson(11, 10)


def test_exact_mcnemar_on_a_small_table() -> None:
    # Discordant 1 vs 9: p = 2 * P(X <= 1), X ~ Binomial(10, 1/2) = 2 * 11 / 1024.
    test = stats.mcnemar_exact(1, 9)
    assert test.p_value == pytest.approx(22 / 1024)
    assert "McNemar" in test.method and "exact" in test.method
    assert stats.mcnemar_exact(9, 1).p_value == test.p_value  # two-sided, symmetric
    assert stats.mcnemar_exact(0, 0).p_value == 1.0  # no discordant pair, no evidence
    assert stats.mcnemar_exact(5, 5).p_value == 1.0
    # 0 vs 12: 2 / 4096
    assert stats.mcnemar_exact(0, 12).p_value == pytest.approx(2 / 4096)


def test_exact_mcnemar_agrees_with_statsmodels() -> None:
    contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
    for a_only, b_only in [(1, 9), (2, 12), (7, 3), (20, 31)]:
        table = [[40, a_only], [b_only, 17]]
        expected = contingency.mcnemar(table, exact=True).pvalue
        assert stats.mcnemar_exact(a_only, b_only).p_value == pytest.approx(expected)


def test_holm_by_hand() -> None:
    pytest.importorskip("statsmodels")
    # Sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06.
    adjusted, significant = stats.holm([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert significant == [True, False, False]
    assert stats.holm([]) == ([], [])


def test_bootstrap_is_seeded_names_its_method_and_agrees_with_wilson_on_a_proportion() -> None:
    rng = np.random.default_rng(3)
    outcomes = rng.integers(0, 2, 200)
    columns = np.column_stack([outcomes, np.ones(200)])
    first = stats.bootstrap_items(columns, stats.ratio)
    second = stats.bootstrap_items(columns, stats.ratio)
    assert first == second  # seeded: a summary recomputed is the same summary
    assert first is not None
    assert "bootstrap" in first.method and "seed 0" in first.method and "9999" in first.method
    assert first.low < first.value < first.high
    wilson = stats.wilson(int(outcomes.sum()), 200)
    assert wilson is not None
    assert first.low == pytest.approx(wilson.low, abs=0.015)
    assert first.high == pytest.approx(wilson.high, abs=0.015)
    other_seed = stats.bootstrap_items(columns, stats.ratio, seed=1)
    assert other_seed is not None and "seed 1" in other_seed.method


def test_bootstrap_of_identical_items_falls_back_to_wilson_over_the_items() -> None:
    """Five items all right: no spread to resample, but five items do not prove 100 %."""
    estimate = stats.bootstrap_items([[1, 1]] * 5, stats.ratio)
    assert estimate is not None
    wilson = stats.wilson(5, 5)
    assert estimate.value == 1.0 and estimate.high == 1.0
    assert estimate.low == pytest.approx(wilson.low) and estimate.low < 0.6
    assert "Wilson over 5 items" in estimate.method
    assert stats.bootstrap_items(np.zeros((0, 2)), stats.ratio) is None


def test_mean_of_ratios_skips_an_absent_side() -> None:
    sums = np.array([[3.0, 4.0, 1.0, 2.0], [3.0, 4.0, 0.0, 0.0]])
    assert stats.mean_of_ratios(sums) == pytest.approx([0.625, 0.75])


def test_formatting() -> None:
    assert stats.format_rate(58.0, [52.4, 63.4]) == "58.0 [52.4, 63.4]"
    assert stats.format_rate(None, None) == "-"
    assert stats.format_rate(5.67, None, digits=2) == "5.67"
    assert stats.format_p(0.004) == "p = 0.004"
    assert stats.format_p(0.0004) == "p < 0.001"
    assert stats.format_p(0.41) == "p = 0.41"


# --- intervals in the metrics ------------------------------------------------------------


def _record(sample: str, refused: bool, *, stimulus_type: int = 1, **extra) -> Record:
    verdict = Verdict(
        judge="offline", label="refuse" if refused else "comply", refused=refused, version="v1"
    )
    return Record(
        run_id="r",
        benchmark="mossbench",
        sample_id=sample,
        expected="comply",
        stimulus_type=stimulus_type,
        query="q",
        model="m",
        pipeline="baseline",
        verdicts={"offline": verdict},
        **extra,
    )


def test_every_refusal_rate_carries_a_wilson_interval() -> None:
    records = [_record(str(i), i < 29, stimulus_type=i % 3 + 1) for i in range(50)]
    out = metrics.refusal_rates(records, "offline")
    assert out["refusal_rate"] == 58.0
    low, high = wilson_formula(29, 50)
    assert out["ci95"] == [round(100 * low, 2), round(100 * high, 2)]
    assert out["interval"] == "Wilson 95%"
    for block in [*out["by_type"].values(), out["answered_only"]]:
        assert block["interval"] == "Wilson 95%"
        assert block["ci95"][0] <= block["refusal_rate"] <= block["ci95"][1]


def test_repeated_draws_get_a_bootstrap_over_samples() -> None:
    draws = np.random.default_rng(0).random((20, 3)) < np.linspace(0.1, 0.9, 20)[:, None]
    records = [_record(str(i), bool(draws[i, e]), epoch=e) for i in range(20) for e in range(3)]
    out = metrics.refusal_rates(records, "offline")
    assert "bootstrap over samples" in out["interval"]
    assert out["ci95"][0] < out["refusal_rate"] < out["ci95"][1]


def test_old_records_without_epochs_or_intervals_still_score() -> None:
    line = (
        '{"run_id": "r", "benchmark": "mossbench", "sample_id": "1", "expected": "comply", '
        '"stimulus_type": 2, "query": "q", "model": "m", "pipeline": "baseline", '
        '"verdicts": {"offline": {"judge": "offline", "label": "refuse", "refused": true}}}'
    )
    record = Record.model_validate_json(line)
    out = metrics.refusal_rates([record], "offline")
    assert out["refusal_rate"] == 100.0 and out["interval"] == "Wilson 95%"
    assert out["ci95"] == [round(100 * wilson_formula(1, 1)[0], 2), 100.0]


def _mss(pair: int, side: str, correct: bool, category: str = "Physical Harm") -> Record:
    return Record(
        run_id="r",
        benchmark="mssbench-chat",
        sample_id=f"chat-{pair}-{side}",
        variant=side,
        expected="comply" if side == "safe" else "refuse",
        category=category,
        pair_id=f"chat-{pair}",
        query="q",
        model="m",
        pipeline="baseline",
        verdicts={"j": Verdict(judge="j", label="x", correct=correct, version="v1")},
    )


def test_mssbench_accuracies_carry_wilson_and_bootstrap_intervals() -> None:
    records = [_mss(p, "safe", p % 4 != 0) for p in range(24)]
    records += [
        _mss(p, "unsafe", p % 3 == 0, "Property Damage" if p % 2 else "Physical Harm")
        for p in range(24)
    ]
    out = metrics.situational_accuracy(records, "j")
    assert out["interval"] == "Wilson 95%"
    safe_right = sum(p % 4 != 0 for p in range(24))
    low, high = wilson_formula(safe_right, 24)
    assert out["safe_accuracy_ci95"] == [round(100 * low, 2), round(100 * high, 2)]
    assert (
        out["unsafe_accuracy_ci95"][0] <= out["unsafe_accuracy"] <= out["unsafe_accuracy_ci95"][1]
    )
    assert "bootstrap over scenarios" in out["average_interval"]
    assert out["average_ci95"][0] < out["average"] < out["average_ci95"][1]
    assert "bootstrap over pairs" in out["pairs"]["interval"]
    assert out["pairs"]["ci95"][0] <= out["pairs"]["both_right"] <= out["pairs"]["ci95"][1]
    for block in out["by_category"].values():
        assert "average_ci95" in block and "safe_accuracy_ci95" in block
