"""Paired comparisons of two runs (or sweep cells) over the samples they share.

Two runs over the same samples are compared sample by sample, not rate against rate: a
pipeline that refuses 58 % against another's 61 % on 100 samples may differ on 3 or on 40
samples, and only the paired view tells which. For each shared sample (and draw) the outcome
is the benchmark's: refused (refusal benchmarks such as MOSSBench) or correct (situational
ones such as MSSBench). The result gives both rates, their paired difference with a bootstrap
interval over samples, and the exact McNemar test on the discordant samples; a sweep's
comparisons are corrected together with Holm (:func:`compare_cells`).

Everything returns plain dicts, so the CLI, the sweep summary and the report can print or
store them as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

from poise.benchmarks.registry import benchmark_spec
from poise.benchmarks.sample import STIMULUS_TYPES
from poise.errors import PoiseError
from poise.eval.analysis import stats
from poise.eval.analysis.metrics import judge_version, judged
from poise.eval.run.records import Record

ALPHA = 0.05

# What is compared per sample, by the benchmark's kind: the outcome's name, its verb for a
# verdict line, and whether records with an unparseable verdict count (MSSBench counts them
# wrong, as its paper does; a refusal rate leaves them out, as the metrics do).
OUTCOMES: dict[str, tuple[str, str, bool]] = {
    "refusal": ("refused", "refuses", False),
    "situational": ("correct", "is correct", True),
}


def _outcome(kind: str, judge: str) -> Callable[[Record], bool]:
    name = OUTCOMES[kind][0]
    return lambda r: bool(getattr(r.verdicts[judge], name))


def _usable(records: Sequence[Record], kind: str, judge: str) -> list[Record]:
    rows = judged(list(records), judge)
    if OUTCOMES[kind][2]:
        return rows
    return [r for r in rows if r.verdicts[judge].error is None]


def _key(record: Record) -> tuple[str, int]:
    """Records pair on sample and draw (runs without repeated draws are all draw 0)."""
    return (record.sample_id, getattr(record, "epoch", 0) or 0)


def _group(kind: str, record: Record) -> str | None:
    """The breakdown a comparison is also shown by: stimulus type, or the scenario's side."""
    if kind == "refusal":
        return STIMULUS_TYPES.get(record.stimulus_type) if record.stimulus_type else None
    return record.variant or None


def _paired(
    pairs: list[tuple[Record, Record]], outcome: Callable[[Record], bool]
) -> dict[str, Any]:
    """Rates, paired difference (bootstrap over samples) and exact McNemar for these pairs."""
    a = [outcome(x) for x, _ in pairs]
    b = [outcome(y) for _, y in pairs]
    n = len(pairs)
    items: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for (x, _), out_a, out_b in zip(pairs, a, b, strict=True):
        item = items[x.sample_id]  # draws of one sample are resampled together
        item[0] += out_a
        item[1] += 1
        item[2] += out_b
        item[3] += 1
    difference = stats.bootstrap_items(
        list(items.values()), stats.difference_of_ratios, unit="paired samples"
    )
    test = stats.mcnemar_exact(
        sum(x and not y for x, y in zip(a, b, strict=True)),
        sum(y and not x for x, y in zip(a, b, strict=True)),
    )
    assert difference is not None  # pairs is never empty here
    value, ci = difference.percent()
    return {
        "n_pairs": n,
        "n_samples": len(items),
        "rate_a": round(100.0 * sum(a) / n, 2),
        "rate_b": round(100.0 * sum(b) / n, 2),
        "difference": value,
        "ci95": ci,
        "interval": difference.method,
        "a_only": test.a_only,
        "b_only": test.b_only,
        "p_value": test.p_value,
        "test": test.method,
    }


def compare_records(
    records_a: Sequence[Record],
    records_b: Sequence[Record],
    *,
    benchmark: str,
    judge: str,
    label_a: str = "A",
    label_b: str = "B",
    sources: tuple[str, str] = ("RUN_A", "RUN_B"),
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """The paired comparison of two runs' records on ``benchmark`` under ``judge``.

    ``sources`` name the two runs in the commands an error suggests (their directories).

    Raises :class:`PoiseError` (one line naming the fix) when a run lacks the judge's verdicts,
    the two carry different versions of the judge, or they share no judged sample.
    Returns the overall comparison (``difference`` is A minus B, in points) with a
    ``verdict`` sentence, and ``groups``: the same per stimulus type or side, Holm-corrected
    across those groups.
    """
    kind = benchmark_spec(benchmark).kind
    for source, records in zip(sources, (records_a, records_b), strict=True):
        if not judged(list(records), judge):
            raise PoiseError(
                f"{source} has no {judge} verdicts; add them with: "
                f"poise judge {source} --judge {judge}"
            )
    version_a, version_b = (
        judge_version(list(records_a), judge),
        judge_version(list(records_b), judge),
    )
    if version_a != version_b:
        raise PoiseError(
            f"{label_a} and {label_b} carry different versions of judge {judge} "
            f"({version_a or 'unversioned'} vs {version_b or 'unversioned'}); re-judge both "
            f"with one: poise judge {sources[0]} --judge {judge} (and {sources[1]})"
        )
    outcome = _outcome(kind, judge)
    by_key_b = {_key(r): r for r in _usable(records_b, kind, judge)}
    pairs = [(r, by_key_b[_key(r)]) for r in _usable(records_a, kind, judge) if _key(r) in by_key_b]
    if not pairs:
        raise PoiseError(
            f"{label_a} and {label_b} share no judged samples; compare runs over the same "
            "samples (same --data and selection, e.g. the same --limit or --ids)"
        )
    pairs.sort(key=lambda p: _key(p[0]))
    result: dict[str, Any] = {
        "a": label_a,
        "b": label_b,
        "benchmark": benchmark,
        "judge": judge,
        "judge_version": version_a,
        "outcome": OUTCOMES[kind][0],
        **_paired(pairs, outcome),
    }
    result["significant"] = result["p_value"] < alpha
    result["verdict"] = verdict(result, kind)
    grouped: dict[str, list[tuple[Record, Record]]] = defaultdict(list)
    for pair in pairs:
        name = _group(kind, pair[0])
        if name:
            grouped[name].append(pair)
    groups = [{"group": name, **_paired(members, outcome)} for name, members in grouped.items()]
    adjusted, significant = stats.holm([g["p_value"] for g in groups], alpha)
    for group, p, sig in zip(groups, adjusted, significant, strict=True):
        group.update(p_holm=p, significant=sig, correction=f"Holm across {len(groups)} groups")
    result["groups"] = groups if len(groups) > 1 else []
    return result


def verdict(result: dict[str, Any], kind: str, p_key: str = "p_value") -> str:
    """One sentence a user can quote: the difference, its interval and the exact p-value.

    Significance is judged by the McNemar p-value (``p_key``: ``p_holm`` within a sweep);
    the interval shows how large the difference plausibly is.
    """
    a, b, p = result["a"], result["b"], result[p_key]
    p_text = stats.format_p(p)
    if p_key == "p_holm":
        p_text = p_text.replace("p ", "Holm-adjusted p ", 1)
    if not result.get("significant"):
        what = OUTCOMES[kind][0]
        return (
            f"no detectable difference between {a} and {b} ({what} {result['rate_a']:.1f} % vs "
            f"{result['rate_b']:.1f} % on {result['n_pairs']} paired samples, {p_text})"
        )
    d = result["difference"]
    low, high = result["ci95"]
    direction = "less" if d < 0 else "more"
    if d < 0:
        low, high = -high, -low
    verb = OUTCOMES[kind][1]
    where = " often" if kind == "situational" else ""
    return (
        f"{a} {verb} {abs(d):.1f} points {direction}{where} than {b} "
        f"(95% CI {low:.1f} to {high:.1f}), McNemar exact {p_text}"
    )


def compare_cells(
    cells: Mapping[str, Sequence[Record]],
    *,
    judge: str | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """Paired comparisons between a sweep's cells, Holm-corrected across all of them.

    ``cells`` maps a cell's label (e.g. its run directory's name) to its records. Compared
    are ``pairs`` of labels if given (e.g. only cells that differ in one factor), else every
    two cells of one benchmark that share samples. ``judge`` defaults to the benchmark's
    default judge, or the one judge both cells carry. Returns ``{"comparisons": [...],
    "skipped": [{"a", "b", "reason"}], "correction", "family", "alpha"}``; each comparison is
    :func:`compare_records`'s dict plus ``p_holm``, ``significant`` (Holm-adjusted p <
    ``alpha``) and a ``verdict`` that quotes the adjusted p.
    """
    labels = list(cells)
    candidates = list(pairs) if pairs is not None else list(combinations(labels, 2))
    comparisons: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for a, b in candidates:
        if a not in cells or b not in cells:
            raise PoiseError(f"no cell named {a if a not in cells else b!r} to compare")
        bench_a = {r.benchmark for r in cells[a]}
        bench_b = {r.benchmark for r in cells[b]}
        if len(bench_a) != 1 or bench_a != bench_b:
            if pairs is not None:
                skipped.append({"a": a, "b": b, "reason": "different benchmarks"})
            continue
        benchmark = next(iter(bench_a))
        name = judge or _common_judge(cells[a], cells[b], benchmark)
        if name is None:
            skipped.append({"a": a, "b": b, "reason": "no judge common to both"})
            continue
        try:
            comparisons.append(
                compare_records(
                    cells[a], cells[b], benchmark=benchmark, judge=name, label_a=a, label_b=b
                )
            )
        except PoiseError as exc:
            skipped.append({"a": a, "b": b, "reason": str(exc)})
    adjusted, significant = stats.holm([c["p_value"] for c in comparisons], alpha)
    for comparison, p, sig in zip(comparisons, adjusted, significant, strict=True):
        comparison.update(p_holm=p, significant=sig)
        kind = benchmark_spec(comparison["benchmark"]).kind
        comparison["verdict"] = verdict(comparison, kind, p_key="p_holm")
    return {
        "comparisons": comparisons,
        "skipped": skipped,
        "correction": f"Holm across {len(comparisons)} comparisons",
        "family": len(comparisons),
        "alpha": alpha,
    }


def _common_judge(a: Sequence[Record], b: Sequence[Record], benchmark: str) -> str | None:
    common = {n for r in a for n in r.verdicts} & {n for r in b for n in r.verdicts}
    default = benchmark_spec(benchmark).default_judge()
    if default in common:
        return default
    return next(iter(common)) if len(common) == 1 else None
