"""Intervals and paired tests, so a figure says how sure it is and a comparison says if it is real.

A refusal rate over 100 samples printed as 58 vs 61 invites a conclusion the data may not
support. Everything here comes from scipy (and statsmodels for the multiple-comparison
correction) rather than hand-written formulas, and every result carries the name of its
method, so a reader of ``summary.json`` or of a comparison knows what the interval means:

- :func:`wilson`: a proportion of independent items (Wilson score interval, 95 %), which
  keeps sensible bounds at 0 % and 100 % where the textbook normal interval collapses
  (the closed form, checked against scipy's in the tests, as scipy.stats is slow to import);
- :func:`bootstrap_items`: a statistic over items that is not one proportion (MSSBench's
  average of safe and unsafe accuracy, pair accuracy, repeated draws of one item, a paired
  difference): items are resampled whole, so draws or sides of one item stay together.
  BCa, 9,999 resamples, seeded (seed 0 by default), so a summary recomputed from the same
  records gives the same interval;
- :func:`mcnemar_exact`: the exact McNemar test of two paired binary outcomes, i.e. a
  two-sided binomial test on the discordant pairs;
- :func:`holm`: Holm's step-down correction across a family of comparisons (a sweep).

Proportions are fractions in ``[0, 1]`` here; metrics and reports turn them into percent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy (60 ms) loads with the first bootstrap, not with `poise run`
    import numpy as np

CONFIDENCE = 0.95
N_RESAMPLES = 9999
SEED = 0
WILSON = "Wilson 95%"


def bootstrap_method(seed: int = SEED, n_resamples: int = N_RESAMPLES, unit: str = "items") -> str:
    """The method name a bootstrap interval carries (what was resampled, how, and the seed)."""
    return f"bootstrap over {unit} 95% (BCa, {n_resamples} resamples, seed {seed})"


MCNEMAR = "exact McNemar (two-sided binomial test on discordant pairs)"
HOLM = "Holm"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95 % interval and the method that produced the interval."""

    value: float
    low: float
    high: float
    n: int
    method: str

    def percent(self, digits: int = 2) -> tuple[float, list[float]]:
        """``(value, [low, high])`` in percent, rounded for summaries."""
        return (
            round(100.0 * self.value, digits),
            [round(100.0 * self.low, digits), round(100.0 * self.high, digits)],
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedTest:
    """An exact McNemar test: ``a_only`` pairs where only A had the outcome, ``b_only`` the
    reverse; the concordant pairs carry no information about a difference and are not used."""

    a_only: int
    b_only: int
    p_value: float
    method: str = MCNEMAR

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> Estimate | None:
    """The proportion ``successes / n`` with its Wilson score interval; None when ``n`` is 0.

    Wilson's closed form with the normal quantile from :class:`statistics.NormalDist`:
    scipy's ``binomtest(...).proportion_ci(method="wilson")`` gives the same bounds (tested
    to 1e-12) but importing ``scipy.stats`` costs 0.6-1.5 s, paid by every ``poise run`` at
    its summary for a two-line formula.
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} must lie between 0 and n = {n}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Estimate(
        value=p,
        low=max(0.0, centre - half),
        high=min(1.0, centre + half),
        n=n,
        method=WILSON if confidence == CONFIDENCE else f"Wilson {100 * confidence:g}%",
    )


def bootstrap_items(
    columns: np.ndarray | Sequence[Sequence[float]],
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    unit: str = "items",
    seed: int = SEED,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Estimate | None:
    """A BCa bootstrap interval for a statistic of per-item sums, resampling whole items.

    ``columns`` has one row per item and one column per count (e.g. ``[refused, draws]``, or
    ``[safe_right, safe_n, unsafe_right, unsafe_n]``). ``statistic`` maps the column sums of a
    resample, an array whose last axis is the columns, to the value (vectorised over leading
    axes; NaN where a resample leaves a ratio undefined is ignored by ``np.nanmean`` callers).
    Resampling items, not records, keeps the draws of one item, or the two sides of one
    MSSBench scenario, together. Seeded: the same records give the same interval. When every
    item gives the same value (or BCa is undefined) a bootstrap has no spread to show, and a
    zero-width interval would claim a certainty a few items cannot give: the interval is then
    Wilson's for the value over the number of items, and the method says so.
    """
    import numpy as np
    from scipy.stats import bootstrap

    table = np.asarray(columns, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return None
    value = float(statistic(table.sum(axis=0)))
    method = bootstrap_method(seed, n_resamples, unit)
    if table.shape[0] == 1 or np.all(table == table[0]):
        return _items_wilson(value, table.shape[0], unit, confidence)

    def on_indices(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        indices = indices.astype(np.intp)
        # Column by column: one (..., n_items) gather at a time instead of a 3-D copy.
        return statistic(np.stack([column[indices].sum(axis=-1) for column in table.T], -1))

    with np.errstate(invalid="ignore", divide="ignore"):
        result = bootstrap(
            (np.arange(table.shape[0]),),
            on_indices,
            vectorized=True,
            n_resamples=n_resamples,
            batch=max(1, 4_000_000 // (table.shape[0] * table.shape[1])),
            confidence_level=confidence,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        # BCa is undefined when the resamples barely vary (e.g. one item differs).
        return _items_wilson(value, table.shape[0], unit, confidence)
    return Estimate(value, min(low, value), max(high, value), table.shape[0], method)


def _items_wilson(value: float, items: int, unit: str, confidence: float) -> Estimate:
    """Wilson's interval for a rate ``value`` measured over ``items`` units (the fallback of a
    bootstrap with nothing to resample)."""
    import numpy as np

    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        return Estimate(value, value, value, items, f"point only ({unit}: no spread)")
    estimate = wilson(round(value * items), items, confidence)
    assert estimate is not None
    return Estimate(
        value,
        min(estimate.low, value),
        max(estimate.high, value),
        items,
        f"Wilson over {items} {unit} (a bootstrap had no spread to resample)",
    )


def ratio(sums: np.ndarray) -> np.ndarray:
    """``sums[..., 0] / sums[..., 1]``: a rate over items with one or more draws each."""
    return sums[..., 0] / sums[..., 1]


def mean_of_ratios(sums: np.ndarray) -> np.ndarray:
    """The mean of the ratios of consecutive column pairs, skipping undefined ones.

    MSSBench's average accuracy is the mean of safe and unsafe accuracy
    (``[safe_right, safe_n, unsafe_right, unsafe_n]``); a side absent from a resample is
    left out, as it is left out of the point estimate when a run has only one side.
    """
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = sums[..., 0::2] / sums[..., 1::2]
        return np.nanmean(ratios, axis=-1)


def difference_of_ratios(sums: np.ndarray) -> np.ndarray:
    """``sums[0]/sums[1] - sums[2]/sums[3]``: A's rate minus B's over paired items."""
    return sums[..., 0] / sums[..., 1] - sums[..., 2] / sums[..., 3]


def mcnemar_exact(a_only: int, b_only: int) -> PairedTest:
    """Exact McNemar test: under no difference each discordant pair goes either way with 1/2.

    ``a_only``: pairs where only A had the outcome (e.g. refused); ``b_only``: only B. With no
    discordant pair there is no evidence of a difference and p is 1.
    """
    from scipy.stats import binomtest

    if a_only < 0 or b_only < 0:
        raise ValueError("discordant counts cannot be negative")
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5, alternative="two-sided").pvalue)
    return PairedTest(a_only=a_only, b_only=b_only, p_value=min(1.0, p))


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """Holm-adjusted p-values and which comparisons are significant at ``alpha``.

    Holm controls the chance of any false finding across the family (a sweep's comparisons)
    without assuming the comparisons independent, and is uniformly stronger than Bonferroni.
    """
    if not p_values:
        return [], []
    try:
        from statsmodels.stats.multitest import multipletests
    except ImportError:
        from poise.errors import PoiseError

        raise PoiseError(
            "the Holm correction needs statsmodels: pip install statsmodels "
            "(or reinstall Poise: pip install -e .)"
        ) from None

    reject, adjusted, _, _ = multipletests(list(p_values), alpha=alpha, method="holm")
    return [float(p) for p in adjusted], [bool(r) for r in reject]


def format_p(p: float) -> str:
    """``p = 0.004``, ``p < 0.001``: how p-values are printed everywhere."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.0995 else f"p = {p:.2f}"


def format_rate(value: float | None, ci95: Sequence[float] | None, digits: int = 1) -> str:
    """``58.0 [52.4, 63.4]``: a percentage with its interval, as tables and reports show it."""
    if value is None:
        return "-"
    if not ci95:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{ci95[0]:.{digits}f}, {ci95[1]:.{digits}f}]"
