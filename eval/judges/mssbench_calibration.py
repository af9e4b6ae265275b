"""The offline MSSBench judge's training and trust: fitted on, and measured against, blind labels.

``data/mssbench_labels.jsonl`` holds responses to MSSBench-style chat queries and embodied
instructions, both sides, all four rubric classes, several model families' styles, each
labelled blind (its first line says how). Two figures matter, as in the paper's metrics:
the 4-class accuracy, and the *side* accuracy - whether the judge puts a response on the
same side of the line the metrics use (declined or warned, classes 0/1, against answered,
classes 2/3).

The judge is a linear model fitted on every labelled row (``data/mssbench_linear.json``), so
its figure on those rows is a training fit, not a test. What it does on responses it has
not seen is measured two ways, both refitting from scratch: grouped cross-validation
(5 folds, all responses of one scenario in the same fold) and a model fitted on the first
440 rows only, tested on the ``fresh`` split (160 responses in new scenarios and words,
written and labelled after the rest).

Refit the shipped weights after changing the labels: ``python -m
poise.eval.judges.mssbench_calibration --refit``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from poise.eval.judges.agreement import cohen_kappa, confusion_matrix
from poise.eval.judges.calibration import read_labelled

LABELS_FILE = "mssbench_labels.jsonl"
FOLDS = 5
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


def _texts_labels(rows: list[dict[str, Any]]) -> tuple[list[str], list[int]]:
    return [row["response"] for row in rows], [int(row["label"]) for row in rows]


def cross_validate(folds: int = FOLDS) -> dict[str, Any]:
    """Grouped k-fold: each fold's model never saw a response to the scenarios it is tested on."""
    from sklearn.model_selection import GroupKFold

    from poise.eval.judges.linear_text import LinearTextModel, fit_linear_text
    from poise.eval.judges.mssbench import classify_offline

    _, rows = load_mssbench_labels()
    texts, labels = _texts_labels(rows)
    groups = [row["query"] for row in rows]
    predicted = [0] * len(rows)
    for train, test in GroupKFold(n_splits=folds).split(texts, labels, groups):
        model = LinearTextModel(
            fit_linear_text([texts[i] for i in train], [labels[i] for i in train])
        )
        for index in test:
            predicted[index] = classify_offline(texts[index], model)[0]
    return {"folds": folds, "grouped_by": "scenario (query)", **_metrics(rows, predicted)}


def fresh_check() -> dict[str, Any]:
    """A model fitted on every row but the ``fresh`` split, tested on the fresh split."""
    from poise.eval.judges.linear_text import LinearTextModel, fit_linear_text
    from poise.eval.judges.mssbench import classify_offline

    _, rows = load_mssbench_labels()
    train = [row for row in rows if row.get("split") != "fresh"]
    test = [row for row in rows if row.get("split") == "fresh"]
    model = LinearTextModel(fit_linear_text(*_texts_labels(train)))
    predicted = [classify_offline(row["response"], model)[0] for row in test]
    return {"trained_on": len(train), **_metrics(test, predicted)}


def refit(path: Path | None = None) -> Path:
    """Fit the shipped weights on every labelled row and write them."""
    from poise.eval.judges.linear_text import fit_linear_text
    from poise.eval.judges.mssbench import WEIGHTS_FILE

    meta, rows = load_mssbench_labels()
    state = fit_linear_text(
        *_texts_labels(rows),
        meta={
            "what": "mssbench-offline: TF-IDF word 1-2 and character 3-5 grams, logistic "
            "regression, classes 0-3 of the MSSBench rubric",
            "trained_on": f"eval/judges/data/{LABELS_FILE} (all rows)",
            "fitted": date.today().isoformat(),
        },
    )
    target = path or Path(str(resources.files("poise.eval.judges").joinpath("data", WEIGHTS_FILE)))
    target.write_text(json.dumps(state, separators=(",", ":")) + "\n", encoding="utf-8")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refit", action="store_true", help="rewrite the shipped weights")
    args = parser.parse_args()
    if args.refit:
        print(f"wrote {refit()}")
    else:
        print(json.dumps({"cross_validation": cross_validate(), "fresh": fresh_check()}, indent=1))


if __name__ == "__main__":
    main()
