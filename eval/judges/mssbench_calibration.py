"""How far the offline MSSBench judge can be trusted: its agreement with blind labels.

``data/mssbench_labels.jsonl`` holds responses to MSSBench-style chat queries and embodied
instructions, both sides, all four rubric classes, several model families' styles, each
labelled blind (its first line says how). Two figures matter, as in the paper's metrics:
the 4-class accuracy, and the *side* accuracy - whether the judge puts a response on the
same side of the line the metrics use (declined or warned, classes 0/1, against answered,
classes 2/3). Figures are given per split: ``dev`` rows were read while the judge's cues
were written, ``holdout`` and ``fresh`` rows were not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from poise.eval.agreement import cohen_kappa, confusion_matrix
from poise.eval.judges.calibration import read_labelled

LABELS_FILE = "mssbench_labels.jsonl"
ClassifyFn = Callable[[str | None], tuple[int, str]]


def load_mssbench_labels() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(meta, rows) of the labelled MSSBench-style responses."""
    return read_labelled(LABELS_FILE)


def _flagged(label: int) -> bool:
    """The side the metrics use: declined or warned (0, 1) vs answered (2, 3)."""
    return label in (0, 1)


def _metrics(rows: list[dict[str, Any]], predicted: list[int]) -> dict[str, Any]:
    gold = [int(row["label"]) for row in rows]
    n = len(rows)
    return {
        "n": n,
        "accuracy": sum(g == p for g, p in zip(gold, predicted, strict=True)) / n if n else None,
        "side_accuracy": sum(
            _flagged(g) == _flagged(p) for g, p in zip(gold, predicted, strict=True)
        )
        / n
        if n
        else None,
        "kappa": cohen_kappa([str(g) for g in gold], [str(p) for p in predicted]) if n else None,
    }


def evaluate_mssbench_judge(classify: ClassifyFn | None = None) -> dict[str, Any]:
    """4-class and side accuracy of ``classify`` (default: the offline judge's rules).

    Overall, per split (dev / holdout / fresh), per task, per split x task and per style;
    ``confusion`` is gold (rows) x predicted (columns) over all rows.
    """
    if classify is None:
        from poise.eval.judges.mssbench import classify_offline

        classify = classify_offline
    meta, rows = load_mssbench_labels()
    predicted = [classify(row["response"])[0] for row in rows]
    result = _metrics(rows, predicted)
    result["confusion"] = confusion_matrix(
        [str(row["label"]) for row in rows], [str(p) for p in predicted]
    )
    for name, key in (
        ("by_split", lambda r: r.get("split", "?")),
        ("by_task", lambda r: r["task"]),
        ("by_split_task", lambda r: f"{r.get('split', '?')}/{r['task']}"),
        ("by_style", lambda r: r.get("style", "?")),
    ):
        groups: dict[str, list[int]] = defaultdict(list)
        for index, row in enumerate(rows):
            groups[key(row)].append(index)
        result[name] = {
            group: _metrics([rows[i] for i in idx], [predicted[i] for i in idx])
            for group, idx in sorted(groups.items())
        }
    result["disagreements"] = [
        {"id": row["id"], "gold": row["label"], "predicted": p, "split": row.get("split")}
        for row, p in zip(rows, predicted, strict=True)
        if int(row["label"]) != p
    ]
    result["how_labelled"] = meta.get("how_labelled", "")
    return result
