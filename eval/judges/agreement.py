"""Agreement between two labellings of the same items (judge vs judge, judge vs human).

Used by ``poise agree`` and by the offline judge's calibration. Raw agreement alone flatters
a judge on skewed data (a judge that always says "comply" agrees 94% of the time with
GPT-4o's labels), so Cohen's kappa, which discounts the agreement expected by chance from
the two marginal distributions, is reported next to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def _check_paired(a: Sequence[Hashable], b: Sequence[Hashable]) -> None:
    if len(a) != len(b):
        raise ValueError(f"labellings differ in length: {len(a)} != {len(b)}")


def confusion_matrix(a: Sequence[str], b: Sequence[str]) -> dict[str, dict[str, int]]:
    """Counts ``matrix[label_a][label_b]`` over paired items.

    Every label seen in either list is a row and a column (zeros included), so that the
    matrix is square and can be printed or compared without missing keys. Labels are
    sorted for a stable order.
    """
    _check_paired(a, b)
    labels = sorted(set(a) | set(b))
    matrix = {row: dict.fromkeys(labels, 0) for row in labels}
    for x, y in zip(a, b, strict=True):
        matrix[x][y] += 1
    return matrix


def agreement_rate(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Fraction of items on which the two labellings agree (0.0 for no items)."""
    _check_paired(a, b)
    if not a:
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa: (p_observed - p_chance) / (1 - p_chance).

    When chance agreement is 1 (both labellings use one and the same single class) kappa is
    undefined; it is reported as 1.0 if the labellings agree perfectly and 0.0 otherwise,
    rather than dividing by zero. No items also gives 0.0.
    """
    _check_paired(a, b)
    n = len(a)
    if n == 0:
        return 0.0
    observed = agreement_rate(a, b)
    count_a, count_b = Counter(a), Counter(b)
    chance = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    if chance >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - chance) / (1.0 - chance)
