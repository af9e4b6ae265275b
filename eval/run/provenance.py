"""What produced a run, so that a result can be reproduced.

``run.json`` carries a ``provenance`` block: the Poise version (and the git commit when Poise
runs from a checkout), the Python version and platform, and the versions of the packages that
shape a model's answers or their parsing. Versions come from installed metadata, so torch or
transformers are never imported just to name them. Nothing from the environment is read:
no variables, no remote URLs (which can carry credentials), no secrets.
"""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import poise

KEY_PACKAGES = (
    "langgraph",
    "langchain",
    "langchain-core",
    "langchain-openai",
    "langchain-anthropic",
    "openai",
    "anthropic",
    "transformers",
    "torch",
    "pillow",
    "pydantic",
)
# The checkout root when run from source: poise.eval is the checkout's eval/ directory, so
# this file is <root>/eval/run/provenance.py (installed, it is inside site-packages, no .git).
_SOURCE = Path(__file__).resolve().parents[2]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit(root: Path = _SOURCE) -> dict[str, Any] | None:
    """HEAD's commit and whether the work tree differs from it; None outside a checkout."""
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())}


@cache
def provenance() -> dict[str, Any]:
    """Versions of Poise, Python and the key packages (computed once per process)."""
    versions = {name: _version(name) for name in KEY_PACKAGES}  # each read once: ~3 ms apiece
    return {
        "poise": _version("poise-safety") or poise.__version__,
        "git": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": {name: version for name, version in versions.items() if version},
    }
