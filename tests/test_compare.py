"""``poise compare`` and ``compare_cells`` on real runs of recorded answers (no network).

The figures are checked against the records themselves: the rates, the paired difference and
the exact McNemar p-value recomputed independently from the two runs' verdicts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from scipy.stats import binomtest
from typer.testing import CliRunner

from poise.eval.analysis.compare import compare_cells, compare_records
from poise.eval.cli import app, main
from poise.eval.run.records import read_records

# Every comparison Holm-corrects its per-group p-values (statsmodels, a declared dependency).
pytest.importorskip("statsmodels", reason="statsmodels is not installed: pip install -e .")

SAFE_TEXT = "Sure! Here is how to do it: first gather what you need, then follow these steps."
UNSAFE_TEXT = (
    "Warning: this looks dangerous here. Please be careful and avoid doing this near the hazard."
)


def _run(out: Path, *args: str) -> Path:
    result = CliRunner().invoke(app, ["run", "--out", str(out), "--no-progress", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    (directory,) = [p for p in out.iterdir() if p.is_dir()]
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    contrast = root / "contrast.json"
    contrast.write_text(json.dumps({"1": "I cannot help with that.", "2": "Sure."}))
    return {
        "haiku": _run(root / "haiku", "--model", "replay/claude-3-haiku", "--limit", "60"),
        "gpt4o": _run(root / "gpt4o", "--model", "replay/gpt-4o", "--limit", "60"),
        "opus": _run(root / "opus", "--model", "replay/claude-3-opus", "--limit", "60"),
        "later": _run(root / "later", "--model", "replay/gpt-4o", "--ids", "250,251"),
        "contrast": _run(
            root / "contrast",
            "--benchmark",
            "mossbench-contrast",
            "--model",
            f"replay/{contrast}",
            "--ids",
            "1,2",
        ),
    }


def poise(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """The ``poise`` entry point as a user calls it: exit status, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["poise", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _independent(a: Path, b: Path) -> tuple[float, float]:
    """Difference in refusal rate (points) and exact McNemar p, straight from the records."""
    left = {
        r.sample_id: bool(r.verdicts["offline"].refused) for r in read_records(a / "records.jsonl")
    }
    right = {
        r.sample_id: bool(r.verdicts["offline"].refused) for r in read_records(b / "records.jsonl")
    }
    shared = sorted(set(left) & set(right))
    only_a = sum(left[s] and not right[s] for s in shared)
    only_b = sum(right[s] and not left[s] for s in shared)
    difference = 100 * (only_a - only_b) / len(shared)
    return difference, binomtest(only_a, only_a + only_b, 0.5).pvalue


def test_compare_prints_the_paired_difference_and_exact_mcnemar(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = poise(capsys, monkeypatch, "compare", str(runs["haiku"]), str(runs["gpt4o"]))
    assert code == 0, err
    difference, p = _independent(runs["haiku"], runs["gpt4o"])
    assert p < 0.05
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith(
        f"replay/claude-3-haiku refuses {difference:.1f} points more than replay/gpt-4o (95% CI "
    )
    assert verdict.endswith(f"McNemar exact p = {p:.3f}")
    assert "bootstrap over paired samples" in out and "seed 0" in out


def test_compare_says_no_detectable_difference(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder holding one run (what --out names) is accepted for that run.
    code, out, _ = poise(
        capsys, monkeypatch, "compare", str(runs["opus"].parent), str(runs["gpt4o"])
    )
    assert code == 0
    _, p = _independent(runs["opus"], runs["gpt4o"])
    assert p > 0.05
    assert out.strip().splitlines()[-1] == (
        "no detectable difference between replay/claude-3-opus and replay/gpt-4o "
        f"(refused 6.7 % vs 5.0 % on 60 paired samples, p = {p:.2f})"
    )


@pytest.mark.parametrize(
    ("a", "b", "extra", "expected"),
    [
        ("haiku", "later", (), "share no judged samples"),
        ("contrast", "haiku", (), "RUN_A is a mossbench-contrast run and RUN_B a mossbench run"),
        ("haiku", "gpt4o", ("--judge", "mossbench-llm"), "has no mossbench-llm verdicts"),
        ("haiku", "nowhere", (), "does not exist"),
        ("root", "haiku", (), "holds 5 runs"),
    ],
)
def test_compare_refuses_with_one_line(
    runs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    a: str,
    b: str,
    extra: tuple[str, ...],
    expected: str,
) -> None:
    root = runs["haiku"].parent.parent

    def where(name: str) -> str:
        return str(root) if name == "root" else str(runs.get(name, root / name))

    code, out, err = poise(capsys, monkeypatch, "compare", where(a), where(b), *extra)
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_compare_on_mssbench_compares_correctness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mssbench_fixture import build_mssbench_fixture

    data = build_mssbench_fixture(tmp_path / "mss", quirks=False)
    ids = [
        f"chat-{e}-{q}-{side}"
        for e, n in enumerate((3, 2, 3, 2, 2))
        for q in range(n)
        for side in ("safe", "unsafe")
    ]
    blind = tmp_path / "blind.json"
    blind.write_text(json.dumps({i: SAFE_TEXT for i in ids}))
    aware = tmp_path / "aware.json"
    aware.write_text(
        json.dumps({i: SAFE_TEXT if i.endswith("-safe") else UNSAFE_TEXT for i in ids})
    )
    common = ("--benchmark", "mssbench-chat", "--data", str(data))
    a = _run(tmp_path / "a", *common, "--model", f"replay/{aware}")
    b = _run(tmp_path / "b", *common, "--model", f"replay/{blind}")
    code, out, err = poise(capsys, monkeypatch, "compare", str(a), str(b))
    assert code == 0, err
    # The aware run is right on the 12 unsafe samples the blind one gets wrong, alike on safe.
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith(
        f"replay/{aware} is correct 50.0 points more often than replay/{blind}"
    )
    assert verdict.endswith("McNemar exact p < 0.001")
    records_a = read_records(a / "records.jsonl")
    result = compare_records(
        records_a,
        read_records(b / "records.jsonl"),
        benchmark="mssbench-chat",
        judge="mssbench-offline",
    )
    assert (result["a_only"], result["b_only"], result["n_pairs"]) == (12, 0, 24)
    assert result["p_value"] == pytest.approx(2 / 2**12)
    sides = {g["group"]: g for g in result["groups"]}
    assert sides["unsafe"]["difference"] == 100.0 and sides["safe"]["difference"] == 0.0


def test_compare_cells_holm_corrects_across_the_sweep(runs: dict[str, Path]) -> None:
    pytest.importorskip("statsmodels")
    cells = {
        name: read_records(runs[name] / "records.jsonl")
        for name in ("haiku", "gpt4o", "opus", "later", "contrast")
    }
    summary = compare_cells(cells)
    pairs = {(c["a"], c["b"]) for c in summary["comparisons"]}
    assert pairs == {("haiku", "gpt4o"), ("haiku", "opus"), ("gpt4o", "opus")}
    assert summary["family"] == 3 and summary["correction"] == "Holm across 3 comparisons"
    # Pairs of one benchmark without shared samples are listed with the reason.
    assert {(s["a"], s["b"]) for s in summary["skipped"]} == {
        ("haiku", "later"),
        ("gpt4o", "later"),
        ("opus", "later"),
    }
    for comparison in summary["comparisons"]:
        assert comparison["p_holm"] >= comparison["p_value"]
        assert comparison["significant"] == (comparison["p_holm"] < 0.05)
        assert json.dumps(comparison)  # plain data, ready for a sweep summary
    smallest = min(summary["comparisons"], key=lambda c: c["p_value"])
    assert smallest["p_holm"] == pytest.approx(min(1.0, 3 * smallest["p_value"]))
    assert "Holm-adjusted p" in smallest["verdict"]
    only = compare_cells(cells, pairs=[("haiku", "gpt4o")])
    assert (
        only["family"] == 1
        and only["comparisons"][0]["p_holm"] == only["comparisons"][0]["p_value"]
    )
