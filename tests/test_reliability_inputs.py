"""Hostile and mistaken input: one line naming the fix, a non-zero exit, never a traceback.

Also the guarantees that need no server: atomic rewrites, the run lock, redaction of URL
credentials, CSV formula neutralisation, provenance in run.json.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from conftest import build_mossbench_dir, cli, write_png

from poise.agents import retry
from poise.eval.csvsafe import neutralise
from poise.eval.run.lock import HOLDER_FILE, RunLock
from poise.eval.run.records import write_json
from poise.secrets import redact

REPLAY = ("--model", "replay/gpt-4o", "--no-progress")


@pytest.fixture(autouse=True)
def _reset() -> None:
    yield
    retry.reset_calls()


def one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note:")]
    assert code == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--limit", "0"), "--limit 0"),
        (("--limit", "-1"), "--limit -1"),
        (("--sample", "-1"), "--sample -1"),
        (("--concurrency", "0"), "--concurrency 0"),
        (("--concurrency", "-3"), "--concurrency -3"),
        (("--timeout", "0"), "--timeout"),
        (("--max-retries", "-1"), "--max-retries"),
        (("--ids", "1", "--exclude", "1"), "no samples selected"),
    ],
)
def test_nonsense_numbers_are_refused(
    args: tuple[str, ...], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = cli(capsys, "run", *REPLAY, "--out", str(tmp_path), *args)
    one_line_error(code, err, needle)


def test_out_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = cli(capsys, "run", *REPLAY, "--limit", "1", "--out", str(blocker / "runs"))
    one_line_error(code, err, "--out")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        code, err = cli(capsys, "run", *REPLAY, "--limit", "1", "--out", str(read_only / "x"))
    finally:
        read_only.chmod(0o700)
    if code == 0:  # root ignores permissions: nothing to test here
        return
    one_line_error(code, err, "--out")


def test_corrupt_run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = cli(capsys, "run", *REPLAY, "--limit", "2", "--out", str(tmp_path))
    assert code == 0
    (run_json,) = tmp_path.rglob("run.json")
    run_json.write_text('{"model": "replay/gpt-4o", "pipel')
    for args in (
        ("run", *REPLAY, "--limit", "2", "--out", str(tmp_path)),
        ("report", str(tmp_path), "--out", str(tmp_path / "r.html")),
        ("diagnose", str(tmp_path), "--no-progress"),
        ("judge", str(tmp_path), "--no-progress"),
    ):
        code, err = cli(capsys, *args)
        one_line_error(code, err, "run.json is corrupt")
    assert not (tmp_path / "r.html").exists()


def test_duplicate_sample_ids_are_a_load_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = build_mossbench_dir(tmp_path / "d", 6)
    info_path = data / "images_information" / "information.json"
    info = json.loads(info_path.read_text())
    info["6"]["pid"] = "3"  # two items claim pid 3
    info_path.write_text(json.dumps(info))
    code, err = cli(capsys, "run", *REPLAY, "--data", str(data), "--out", str(tmp_path / "o"))
    one_line_error(code, err, "3 appears more than once")
    as_list = list(info.values())
    info_path.write_text(json.dumps(as_list))
    code, err = cli(capsys, "run", *REPLAY, "--data", str(data), "--out", str(tmp_path / "o"))
    one_line_error(code, err, "3 appears more than once")
    info_path.write_text('{"1": ' + json.dumps(info["1"]) + ', "1": ' + json.dumps(info["2"]) + "}")
    code, err = cli(capsys, "run", *REPLAY, "--data", str(data), "--out", str(tmp_path / "o"))
    one_line_error(code, err, "pid 1 appears more than once")


def test_data_without_images_or_items(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = build_mossbench_dir(tmp_path / "d", 3)
    for image in (data / "images").iterdir():
        image.unlink()
    (data / "images").rmdir()
    code, err = cli(capsys, "run", *REPLAY, "--data", str(data), "--out", str(tmp_path / "o"))
    one_line_error(code, err, "images/")
    (data / "images_information" / "information.json").write_text("{}")
    code, err = cli(capsys, "run", *REPLAY, "--data", str(data), "--out", str(tmp_path / "o"))
    one_line_error(code, err, "lists no items")


def test_a_mistyped_local_path_is_not_tried_on_the_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for benchmark in ("mossbench", "mssbench-chat"):
        code, err = cli(capsys, "run", *REPLAY, "--benchmark", benchmark, "--data", "data/mosbench")
        one_line_error(code, err, "no such directory", "hf:data/mosbench")


def test_a_truncated_jpeg_fails_before_it_is_sent(tmp_path: Path) -> None:
    from PIL import Image

    from poise.benchmarks.sample import ImageRef
    from poise.errors import PoiseError

    path = tmp_path / "cut.jpg"
    Image.effect_noise((256, 256), 64).convert("RGB").save(path, format="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PoiseError, match="corrupt image .* --exclude"):
        ImageRef(path=path).data_url()
    fine = write_png(tmp_path / "ok.png")
    assert ImageRef(path=fine).data_url().startswith("data:image/png;base64,")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_or_corrupt_png_fails_before_it_is_sent(tmp_path: Path, cut: float) -> None:
    """PNGs are checked by their chunk CRCs rather than decoded: still caught."""
    from PIL import Image

    from poise.benchmarks.sample import ImageRef
    from poise.errors import PoiseError

    path = tmp_path / "cut.png"
    Image.effect_noise((256, 256), 64).convert("RGB").save(path, format="PNG")
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: int(len(data) * cut)]))
    with pytest.raises(PoiseError, match="corrupt image"):
        ImageRef(path=path).check()
    flipped = tmp_path / "flipped.png"
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    with pytest.raises(PoiseError, match="corrupt image"):
        ImageRef(path=flipped).check()


def test_exclude_skips_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(
        capsys, "run", *REPLAY, "--limit", "3", "--exclude", "2", "--out", str(tmp_path)
    )
    assert code == 0, err
    (path,) = tmp_path.rglob("records.jsonl")
    assert [json.loads(x)["sample_id"] for x in path.read_text().splitlines()] == ["1", "3", "4"]


def test_rerun_says_everything_was_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "run", *REPLAY, "--limit", "2", "--out", str(tmp_path))[0] == 0
    code, err = cli(capsys, "run", *REPLAY, "--limit", "2", "--out", str(tmp_path))
    assert code == 0 and "all 2 selected samples were already recorded" in err


def test_run_json_has_provenance_and_no_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-provenance-SECRET-123456")
    url = "http://alice:hunter2pw@127.0.0.1:9/v1?api_key=QUERYSECRET&x=1"
    code, err = cli(
        capsys, "run", *REPLAY, "--limit", "1", "--out", str(tmp_path), "--base-url", url
    )
    assert code == 0, err
    (run_json,) = tmp_path.rglob("run.json")
    text = run_json.read_text()
    stored = json.loads(text)
    prov = stored["provenance"]
    assert prov["poise"] and prov["python"] and "langgraph" in prov["packages"]
    assert "openai" in prov["packages"] and "torch" in prov["packages"]
    assert prov["git"] is None or len(prov["git"]["commit"]) == 40
    for secret in ("hunter2pw", "QUERYSECRET", "sk-provenance", "alice:"):
        assert secret not in text
    assert "127.0.0.1:9" in stored["base_url"]


def test_provenance_names_the_commit_of_the_checkout_it_runs_from() -> None:
    from poise.eval.run import provenance as provenance_module

    root = Path(provenance_module.__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not run from a git checkout")
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    found = provenance_module.git_commit()
    assert found is not None and found["commit"] == head
    assert isinstance(found["dirty"], bool)


def test_redaction_of_url_credentials_and_echoed_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-Mixed-Case-Key-abcdef")
    text = redact(
        "GET https://bob:pa55@host.example/v1?token=T0K3N&model=x failed; "
        "server said: invalid key SK-MIXED-CASE-KEY-ABCDEF"
    )
    for secret in ("pa55", "T0K3N", "SK-MIXED-CASE", "bob:"):
        assert secret not in text
    assert "host.example/v1" in text and "model=x" in text


def test_csv_cells_cannot_be_formulas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert neutralise('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for value in ("+1", "-2", "@SUM(A1)", "\tx"):
        assert neutralise(value).startswith("'")
    assert neutralise("plain") == "plain" and neutralise(-3) == -3
    # poise agree writes model output into its CSV
    assert cli(capsys, "run", *REPLAY, "--limit", "2", "--out", str(tmp_path))[0] == 0
    (path,) = tmp_path.rglob("records.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    for record in lines:
        record["response"] = '=HYPERLINK("http://evil.example","click")'
        verdict = dict(record["verdicts"]["offline"])
        record["verdicts"]["other"] = {
            **verdict,
            "judge": "other",
            "label": "refuse",
            "refused": True,
        }
        record["verdicts"]["offline"] = {**verdict, "label": "comply", "refused": False}
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    target = tmp_path / "dis.csv"
    code, err = cli(
        capsys, "agree", str(tmp_path), "--judges", "offline,other", "--out", str(target)
    )
    assert code == 0, err
    rows = list(csv.DictReader(target.open()))
    assert rows and all(row["response_excerpt"].startswith("'=") for row in rows)


def test_run_lock_names_its_holder_and_frees_on_release(tmp_path: Path) -> None:
    from poise.errors import PoiseError

    first = RunLock(tmp_path)
    first.acquire()
    holder = json.loads((tmp_path / HOLDER_FILE).read_text())
    assert holder["pid"] > 0 and holder["since"]
    with pytest.raises(PoiseError, match=rf"pid {holder['pid']} .* since .* --wait"):
        RunLock(tmp_path).acquire()
    first.release()
    assert not (tmp_path / HOLDER_FILE).exists()
    second = RunLock(tmp_path)
    second.acquire()
    second.release()


def test_rewrites_are_atomic_with_private_temporary_files(tmp_path: Path) -> None:
    """Two rewrites of one file never share a temporary file (was: FileNotFoundError)."""
    target = tmp_path / "summary.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    assert target.stat().st_mode & 0o044  # readable like any other result file
