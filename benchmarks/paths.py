"""Confine dataset paths to their data root.

Dataset files are untrusted input: an ``image`` field of ``../../etc/passwd`` must never make
Poise read outside the directory the user pointed it at.
"""

from __future__ import annotations

from pathlib import Path

from poise.errors import PoiseError


def resolve_inside(root: Path, relative: str, *, source: Path | str) -> Path:
    """Join ``relative`` to ``root`` and refuse the result if it leaves ``root``.

    ``source`` names the file the path came from, for the error message.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise PoiseError(f"{source}: empty or non-text image path {relative!r}")
    root = root.resolve()
    candidate = Path(relative)
    if candidate.is_absolute():
        raise PoiseError(
            f"{source}: image path {relative!r} is absolute; paths must be relative to {root}"
        )
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise PoiseError(f"{source}: image path {relative!r} escapes the data root {root}; refused")
    return resolved


def missing_local_path(data: str) -> str | None:
    """Why ``data`` (no such path here) is a mistyped local path rather than a hub id, or None.

    ``data/mosbench`` is shaped like a hub id (``owner/name``), and trying it on the hub costs
    half a minute of network retries before failing. When its first part is a directory here,
    the user meant a local path: say at once that it does not exist. ``hf:owner/name`` always
    means the hub.
    """
    if data.startswith("hf:"):
        return None
    owner = data.partition("/")[0]
    if owner and Path(owner).expanduser().is_dir():
        return (
            f"--data {data}: no such directory ({owner}/ exists here, {data} does not); "
            f"fix the path, or write hf:{data} to load it from the Hugging Face hub"
        )
    return None
