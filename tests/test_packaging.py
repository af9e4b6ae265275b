"""The wheel holds every package and data file: build it, install it outside the checkout
(no editable install), and run Poise offline from there. A subpackage or data file left out
of pyproject.toml fails here rather than on a user's machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built wheel installed into a directory of its own (dependencies from this venv)."""
    work = tmp_path_factory.mktemp("wheel")
    dist, target = work / "dist", work / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    try:
        _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)], work)
    except AssertionError:  # no setuptools in this venv: let pip fetch the build backend
        _run([*pip, "wheel", "--no-deps", "-w", str(dist), str(ROOT)], work)
    wheels = list(dist.glob("poise_safety-*.whl"))
    assert len(wheels) == 1, wheels
    _run([*pip, "install", "--no-deps", "--target", str(target), str(wheels[0])], work)
    return target


def _env(target: Path) -> dict[str, str]:
    # The target comes first on sys.path, before the editable checkout's finder.
    return {**os.environ, "PYTHONPATH": str(target), "POISE_CACHE": str(target / "cache")}


def test_the_installed_wheel_is_the_one_imported(installed: Path, tmp_path: Path) -> None:
    out = _run(
        [sys.executable, "-c", "import poise, poise.eval.cli; print(poise.__file__)"],
        tmp_path,
        _env(installed),
    )
    assert Path(out.strip()).is_relative_to(installed)


def test_poise_run_works_offline_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    env = _env(installed)
    out = _run(
        [sys.executable, "-m", "poise", "run", "--limit", "20", "--out", str(tmp_path / "runs")],
        tmp_path,
        env,
    )
    assert "Refusal rate" in out
    assert len(list((tmp_path / "runs").glob("*/summary.json"))) == 4
    listed = _run([sys.executable, "-m", "poise", "list", "judges"], tmp_path, env)
    assert "mssbench-offline" in listed and "offline" in listed


def test_every_data_file_is_in_the_wheel(installed: Path) -> None:
    """Each data file of the checkout has its installed copy."""
    folders = {"agents": "poise/agents", "benchmarks": "poise/benchmarks", "eval": "poise/eval"}
    suffixes = {".json", ".jsonl", ".toml", ".md", ".j2", ".html", ".css", ".js"}
    missing = [
        str(path.relative_to(ROOT))
        for folder, installed_as in folders.items()
        for path in (ROOT / folder).rglob("*")
        if path.suffix in suffixes
        and path.is_file()
        and not (installed / installed_as / path.relative_to(ROOT / folder)).is_file()
    ]
    assert not missing, missing
