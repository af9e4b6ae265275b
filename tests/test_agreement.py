"""Agreement statistics on small cases whose values are worked out by hand."""

from __future__ import annotations

import pytest

from poise.eval.judges.agreement import agreement_rate, cohen_kappa, confusion_matrix


def test_confusion_matrix_is_square_over_all_labels():
    a = ["refuse", "comply", "comply", "blocked"]
    b = ["refuse", "refuse", "comply", "comply"]
    assert confusion_matrix(a, b) == {
        "blocked": {"blocked": 0, "comply": 1, "refuse": 0},
        "comply": {"blocked": 0, "comply": 1, "refuse": 1},
        "refuse": {"blocked": 0, "comply": 0, "refuse": 1},
    }


def test_agreement_rate():
    assert agreement_rate(["x", "y", "y", "x"], ["x", "y", "x", "x"]) == 0.75
    assert agreement_rate([], []) == 0.0


def test_kappa_textbook_binary_case():
    # 50 items: both "yes" 20, a yes / b no 5, a no / b yes 10, both "no" 15.
    # p_o = 35/50 = 0.7; p_e = (25/50)(30/50) + (25/50)(20/50) = 0.3 + 0.2 = 0.5;
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_three_classes():
    # a = [x, x, y, z], b = [x, y, y, z]: p_o = 3/4.
    # p_e = P(x)P(x) + P(y)P(y) + P(z)P(z) = (2/4)(1/4) + (1/4)(2/4) + (1/4)(1/4) = 5/16.
    # kappa = (12/16 - 5/16) / (11/16) = 7/11.
    assert cohen_kappa(["x", "x", "y", "z"], ["x", "y", "y", "z"]) == pytest.approx(7 / 11)


def test_kappa_perfect_and_chance_level():
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    # b always says "a": observed agreement equals chance agreement -> 0.
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "a", "a", "a"]) == pytest.approx(0.0)
    # systematic disagreement is negative: p_o = 0, p_e = 0.5 -> -1.
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)


def test_kappa_degenerate_single_class_does_not_divide_by_zero():
    assert cohen_kappa(["refuse"] * 4, ["refuse"] * 4) == 1.0
    assert cohen_kappa(["refuse"] * 4, ["comply"] * 4) == 0.0
    assert cohen_kappa([], []) == 0.0


def test_lengths_must_match():
    with pytest.raises(ValueError, match="length"):
        cohen_kappa(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="length"):
        confusion_matrix(["a"], [])
