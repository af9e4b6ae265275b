"""``poise bench judge``: each offline judge's speed and agreement with its labelled sets.

Every table names the data it was measured on and how that data was labelled, so a figure
printed here can be quoted with its provenance.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _metric_table(title: str, groups: dict[str, dict[str, Any]], extra: str = "") -> Table:
    table = Table(title=title, title_justify="left")
    columns = ["group", "n", "5-way acc", "refusal acc", "precision", "recall", "kappa"]
    if extra:
        columns.append(extra)
    for col in columns:
        table.add_column(col)
    for name, m in groups.items():
        row = [
            name,
            str(m["n"]),
            _f(m.get("accuracy")),
            _f(m["binary_accuracy"]),
            _f(m["refusal_precision"]),
            _f(m["refusal_recall"]),
            _f(m["kappa_binary"]),
        ]
        if extra:
            row.append("yes" if m.get(extra) else "no")
        table.add_row(*row)
    return table


def refusal_judge_report(console: Console, speed: dict[str, Any]) -> dict[str, Any]:
    """The ``offline`` refusal judge: speed, labelled sets, the paper's rates."""
    from poise.eval.judges.calibration import (
        evaluate_items,
        evaluate_judge_on_labels,
        published_comparison,
        real_output_report,
        regression_items,
    )
    from poise.eval.judges.refusal import VERSION

    console.print(
        f"offline judge (version {VERSION}): {speed['responses']} responses in "
        f"{speed['seconds']:.2f}s ({speed['responses_per_second']:.0f}/s, best of "
        f"{speed['repeats']}, {speed['cpus']} CPUs)",
        highlight=False,
    )
    packaged = evaluate_judge_on_labels()
    groups = {"all": packaged, "clear cases": packaged.get("clear", packaged)}
    groups.update(packaged["by_model"])
    console.print(
        _metric_table(
            "Packaged MOSSBench responses vs blind labels "
            "(eval/judges/data/mossbench_labels.jsonl; labelled before tuning)",
            groups,
        )
    )
    real = real_output_report()
    groups = {"all real outputs": real}
    if "unseen_families" in real:
        groups["families not read while tuning"] = real["unseen_families"]
    groups.update(real["by_family"])
    console.print(
        _metric_table(
            "Real model outputs per family: packaged (blind labels) + public human labels "
            "(eval/judges/data/refusal_public.jsonl); 'tuned_on' = the family's outputs were "
            "read while the rules were written",
            groups,
            extra="tuned_on",
        )
    )
    regression = evaluate_items(regression_items())
    groups = {"all": regression, **regression["by_family"]}
    console.print(
        _metric_table(
            "Hand-written regression suite, many families' styles "
            "(eval/judges/data/refusal_regression.jsonl; not a real-output figure)",
            groups,
        )
    )
    table = Table(
        title="Refusal % on the packaged responses: offline judge / paper's GPT-4-turbo judge",
        title_justify="left",
    )
    for col in ("model", "all", "ER", "NH", "CI", "within 3 / 6 points"):
        table.add_column(col)
    comparison = published_comparison()
    for row in comparison:
        table.add_row(
            row["model"],
            *(f"{row['measured'][k]:g} / {row['published'][k]:g}" for k in ("all", "1", "2", "3")),
            "yes" if row["within_target"] else "no",
        )
    console.print(table)
    return {
        "speed": speed,
        "version": VERSION,
        "packaged": _strip(packaged),
        "real_outputs": _strip(real),
        "regression": _strip(regression),
        "published_comparison": comparison,
    }


def mssbench_judge_report(console: Console) -> dict[str, Any]:
    """The ``mssbench-offline`` judge: 4-class and side accuracy on responses it never saw."""
    import time

    from poise.eval.judges.mssbench import OFFLINE_NAME, MssbenchOfflineJudge, classify_offline
    from poise.eval.judges.mssbench_calibration import (
        cross_validate,
        evaluate_mssbench_judge,
        fresh_check,
    )

    start = time.perf_counter()
    fit = evaluate_mssbench_judge(classify_offline)
    seconds = time.perf_counter() - start
    console.print(
        f"{OFFLINE_NAME} (version {MssbenchOfflineJudge().version}): {fit['n']} labelled "
        f"responses judged in {seconds:.2f}s (model load included)",
        highlight=False,
    )
    crossed, fresh = cross_validate(), fresh_check()
    table = Table(
        title="mssbench-offline vs blind labels (eval/judges/data/mssbench_labels.jsonl); "
        "side = declined-or-warned (0/1) vs answered (2/3), what the metrics use",
        title_justify="left",
    )
    for col in ("measured on", "n", "4-class acc", "side acc", "kappa"):
        table.add_column(col)
    rows = {
        f"grouped {crossed['folds']}-fold CV (scenarios unseen)": crossed,
        f"fresh split, model fitted on the other {fresh['trained_on']}": fresh,
        "shipped model on its own training rows (fit, not a test)": fit,
    }
    for name, m in rows.items():
        table.add_row(name, str(m["n"]), _f(m["accuracy"]), _f(m["side_accuracy"]), _f(m["kappa"]))
    console.print(table)
    return {
        "seconds": round(seconds, 4),
        "cross_validation": crossed,
        "fresh": fresh,
        "training_fit": _strip(fit),
    }


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    """The figures without per-item lists, for the JSON the command prints."""
    return {k: v for k, v in result.items() if k not in ("disagreements", "confusion_5way")}


def _refusal(console: Console) -> dict[str, Any]:
    from poise.eval.judges.calibration import bench_offline_judge

    return refusal_judge_report(console, bench_offline_judge())


# Which offline judge `poise bench judge --benchmark NAME` measures, by benchmark family.
_REPORTS = {"mossbench": _refusal, "mssbench": mssbench_judge_report}


def judge_report(console: Console, benchmark: str) -> dict[str, Any]:
    """Print and return the report of the offline judge that scores ``benchmark``."""
    from poise.errors import PoiseError, known_names

    report = _REPORTS.get(benchmark)
    if report is None:
        raise PoiseError(f"no judge benchmark for {benchmark!r}; choose {known_names(_REPORTS)}")
    return report(console)
