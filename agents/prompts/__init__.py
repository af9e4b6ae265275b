"""The one prompt registry: every prompt Poise sends is a file.

A prompt file is Markdown with a small front matter::

    ---
    name: safety
    description: one line shown by `poise list prompts`
    ---
    The text sent to the model. {placeholders} are filled with str.format_map.

Prompts live in kinds (sub-folders): ``system`` (system prompts users choose with
``--system-prompt``), ``stages`` (the agents' own instructions), ``judges`` and
``settings``. Users add system prompts by passing a file path or a directory. Each prompt
carries a content hash that records store, so a result names exactly what was asked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from poise.errors import PoiseError, known_names

# The packaged prompts, as a directory (the package is installed unzipped).
ROOT = Path(str(resources.files(__name__)))


@dataclass(frozen=True)
class Prompt:
    name: str
    kind: str
    description: str
    text: str
    path: Path | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]

    def render(self, **values: object) -> str:
        """Fill ``{name}`` placeholders; unknown braces are an error in our own files."""
        try:
            return self.text.format_map(values)
        except KeyError as exc:
            raise PoiseError(f"prompt {self.name} needs a value for {exc}") from None


def parse_prompt_file(path: Path, kind: str) -> Prompt:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PoiseError(f"cannot read prompt file {path}: {exc.__class__.__name__}") from None
    meta: dict[str, str] = {}
    if text.startswith("---\n"):
        head, sep, body = text[4:].partition("\n---\n")
        if not sep:
            raise PoiseError(f"prompt file {path}: front matter opened with --- is never closed")
        key = ""
        for line in head.splitlines():
            if key and line[:1].isspace():
                # An indented line continues the previous key (a ``key: |`` block): how a
                # prompt documents itself without that text being sent to the model.
                meta[key] = (meta[key] + "\n" + line.strip()).strip()
                continue
            key, colon, value = line.partition(":")
            key = key.strip() if colon else ""
            if key:
                meta[key] = "" if value.strip() == "|" else value.strip()
        text = body
    return Prompt(
        name=meta.get("name", path.stem),
        kind=kind,
        description=meta.get("description", ""),
        text=text.strip() + "\n" if text.strip() else "",
        path=path,
    )


def list_prompts(kind: str, extra_dirs: tuple[Path, ...] = ()) -> dict[str, Prompt]:
    """All prompts of a kind: the packaged ones, then the user's directories (which win)."""
    prompts: dict[str, Prompt] = {}
    for folder in (ROOT / kind, *extra_dirs):
        if not folder.is_dir():
            raise PoiseError(f"prompt directory {folder} does not exist")
        for path in sorted(folder.glob("*.md")):
            prompt = parse_prompt_file(path, kind)
            prompts[prompt.name] = prompt
    return prompts


def get_prompt(
    name_or_path: str, kind: str = "system", extra_dirs: tuple[Path, ...] = ()
) -> Prompt:
    """Look a prompt up by registry name, or read it from a file path."""
    known = list_prompts(kind, extra_dirs)
    if name_or_path in known:
        return known[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.suffix in (".md", ".txt") or path.exists():
        if not path.is_file():
            raise PoiseError(f"prompt file {path} not found")
        return parse_prompt_file(path, kind)
    raise PoiseError(
        f"unknown {kind} prompt {name_or_path!r}; known: {known_names(known)} (or pass a file path)"
    )
