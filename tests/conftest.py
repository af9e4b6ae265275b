"""Shared fixtures: the real data under ../shared (skipped when absent) and tiny datasets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # helper modules such as mssbench_fixture

SHARED = TESTS.parent.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED / "mossbench" / "images_information" / "information.json").is_file():
        pytest.skip("../shared/data is absent (a user's clone): real-data test skipped")
    return SHARED


def write_png(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: int = 24) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path, format="PNG")
    return path


def build_mossbench_dir(root: Path, n: int = 6, *, missing: tuple[str, ...] = ()) -> Path:
    """A MOSSBench directory in the GitHub layout with n items, types cycling 1, 2, 3."""
    info = {}
    for i in range(1, n + 1):
        pid = str(i)
        info[pid] = {
            "image": f"images/{pid}.png",
            "short description": f"scene {pid}",
            "question": f"Question number {pid}?",
            "metadata": {
                "over": f"type {(i - 1) % 3 + 1}",
                "human": i % 2,
                "child": 0,
                "syn": 1,
                "ocr": 0,
                "harm": [7],
            },
            "pid": pid,
            "description": f"A detailed description of scene {pid}.",
        }
        if pid not in missing:
            write_png(root / "images" / f"{pid}.png")
    (root / "images_information").mkdir(parents=True, exist_ok=True)
    (root / "images_information" / "information.json").write_text(
        json.dumps(info), encoding="utf-8"
    )
    return root


@pytest.fixture
def tiny_mossbench(tmp_path: Path) -> Path:
    return build_mossbench_dir(tmp_path / "mossbench", 6, missing=("5",))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``poise ARGS`` in this process (as the console script does); exit status and stderr."""
    from poise.eval.cli import main

    argv = sys.argv
    sys.argv = ["poise", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, capsys.readouterr().err
