"""MSSBench (Zhou et al. 2024, arXiv 2410.06172): situational safety of multimodal models.

The same query is safe in one situation and unsafe in another, so every query is asked twice:
once with a safe image (a helpful model answers) and once with an unsafe image (a safe model
points out the risk). The two samples share a ``pair_id``.

Data forms, because users have both:

- a directory holding ``combined.json`` (some copies name it ``combine.json``) plus the image
  folders ``chat/`` and ``embodied/``;
- the hub dataset ``kzhou35/mssbench`` (the default when ``data`` is None), downloaded with
  ``huggingface_hub.snapshot_download`` into the HF cache and then read as a directory. The hub
  marks it "imagefolder", so ``datasets.load_dataset`` would lose the JSON; we read it directly.

Real-data quirks tolerated: a stray leading ":" in ``unsafe_image``, extra unknown fields,
embodied entries with singular (``safe_instruction``) or plural (``safe_instructions``) fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from poise.benchmarks.paths import missing_local_path, resolve_inside
from poise.benchmarks.registry import BenchmarkSpec, LoadedBenchmark, register_benchmark
from poise.benchmarks.sample import Expected, ImageRef, Sample
from poise.errors import PoiseError
from poise.extras import require

HUB_ID = "kzhou35/mssbench"
JSON_NAMES = ("combined.json", "combine.json")
TASKS = ("chat", "embodied")
SIDES = ("safe", "unsafe")
EXPECTED = {"safe": Expected.comply, "unsafe": Expected.flag_risk}

CHAT_FIELDS = {
    "safe_image_path",
    "unsafe_image_path",
    "safe_image",
    "unsafe_image",
    "intent",
    "Type",
    "queries",
}
EMBODIED_FIELDS = {
    "task",
    "category",
    "safe",
    "unsafe",
    "safe_instruction",
    "unsafe_instruction",
    "safe_instructions",
    "unsafe_instructions",
    "observation_safe",
    "observation_unsafe",
}


def load_chat(data: str | Path | None = None) -> LoadedBenchmark:
    return _load("mssbench-chat", "chat", data)


def load_embodied(data: str | Path | None = None) -> LoadedBenchmark:
    return _load("mssbench-embodied", "embodied", data)


# The paper's settings; every one but instruction following is read by its answer line.
SETTINGS = ("if", "qc", "ic", "ic-cap")
_JUDGES = {
    None: "mssbench-offline",
    "if": "mssbench-offline",
    **{s: "mssbench-classification" for s in SETTINGS[1:]},
}

CHAT = register_benchmark(
    BenchmarkSpec(
        name="mssbench-chat",
        description="MSSBench chat: each query with a safe and an unsafe image "
        "(situational safety)",
        loader=load_chat,
        kind="situational",
        task="chat",
        judges=_JUDGES,
        settings=SETTINGS,
        published="mssbench",
        oracles=frozenset({"perception", "intent"}),
        intent_harmful=False,
    )
)
EMBODIED = register_benchmark(
    BenchmarkSpec(
        name="mssbench-embodied",
        description="MSSBench embodied: household-robot instructions with a safe and an "
        "unsafe scene",
        loader=load_embodied,
        kind="situational",
        task="embodied",
        judges=_JUDGES,
        settings=SETTINGS,
        published="mssbench",
        oracles=frozenset({"perception", "intent"}),
        intent_harmful=False,
    )
)


def _load(name: str, task: str, data: str | Path | None) -> LoadedBenchmark:
    """Locate the data, read one task's entries, expand them, and set aside missing images."""
    root, source = _locate(data)
    json_path = _find_json(root)
    entries = _read_entries(json_path, task)
    expand = _chat_samples if task == "chat" else _embodied_samples
    samples: list[Sample] = []
    notes: list[str] = []
    for index, entry in enumerate(entries):
        entry_samples, note = expand(name, index, entry, root, json_path)
        samples.extend(entry_samples)
        if note:
            notes.append(note)
    present = [s for s in samples if s.image.available]  # existence only; decoding stays lazy
    missing = [s.id for s in samples if not s.image.available]
    return LoadedBenchmark(
        name=name, source=source, samples=present, missing_images=missing, notes=_summarise(notes)
    )


# -- where the data is ---------------------------------------------------------------------


def _locate(data: str | Path | None) -> tuple[Path, str]:
    """Turn ``--data`` into a local directory: an existing folder, or a hub id to download."""
    if data is None:
        return _download(HUB_ID), f"hf:{HUB_ID}"
    text = str(data)
    path = Path(text).expanduser()
    if path.is_dir():
        return path, str(path)
    if path.exists():
        raise PoiseError(
            f"--data {path} is a file; pass the MSSBench directory that holds "
            "combined.json, chat/ and embodied/"
        )
    if (typo := missing_local_path(text)) is not None:
        raise PoiseError(typo)
    if _looks_like_hub_id(text):
        repo_id = text.removeprefix("hf:")
        return _download(repo_id), f"hf:{repo_id}"
    raise PoiseError(
        f"--data {data}: no such directory; pass the MSSBench directory (combined.json, chat/, "
        f"embodied/) or the hub id {HUB_ID}"
    )


def _looks_like_hub_id(text: str) -> bool:
    """'hf:owner/name' or a bare 'owner/name' that is not a relative or absolute path."""
    if text.startswith("hf:"):
        return True
    owner, _, repo = text.partition("/")
    return text.count("/") == 1 and bool(owner) and bool(repo) and not owner.startswith((".", "~"))


def _download(repo_id: str) -> Path:
    """Fetch the dataset snapshot into the HF cache (reused by later runs).

    ``huggingface_hub.snapshot_download`` is looked up at call time so tests can monkeypatch it.
    """
    huggingface_hub = require("huggingface_hub", "hub", "MSSBench from the Hugging Face hub")
    try:
        return Path(huggingface_hub.snapshot_download(repo_id=repo_id, repo_type="dataset"))
    except Exception as exc:  # network, gating, wrong id: all one line for the user
        detail = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
        raise PoiseError(
            f"cannot download {repo_id} from the Hugging Face hub ({exc.__class__.__name__}: "
            f"{detail}); download the dataset and pass --data DIR (the folder with combined.json, "
            "chat/ and embodied/); set HF_TOKEN if the dataset is gated"
        ) from None


def _find_json(root: Path) -> Path:
    """``combined.json``, or ``combine.json`` as some copies name it."""
    for name in JSON_NAMES:
        if (root / name).is_file():
            return root / name
    raise PoiseError(
        f"{root} has no combined.json (or combine.json); pass --data DIR pointing at the "
        "MSSBench folder with combined.json, chat/ and embodied/"
    )


def _read_entries(json_path: Path, task: str) -> list[dict[str, Any]]:
    """Parse the JSON and check its top-level shape; entry fields are checked on expansion."""
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoiseError(
            f"{json_path} is not valid JSON: {exc}; restore the file from the benchmark download"
        ) from None
    except OSError as exc:
        raise PoiseError(f"cannot read {json_path}: {exc.strerror or exc}") from None
    if not isinstance(raw, dict) or not any(key in raw for key in TASKS):
        raise PoiseError(
            f"{json_path}: expected an object with 'chat' and 'embodied' lists, found {_kind(raw)}"
        )
    entries = raw.get(task)
    if not isinstance(entries, list):
        raise PoiseError(f"{json_path}: field {task!r} is {_kind(entries)}, expected a list")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PoiseError(f"{json_path}: {task}[{index}] is {_kind(entry)}, expected an object")
    return entries


# -- expansion -------------------------------------------------------------------------------


def _chat_samples(
    name: str, index: int, entry: Mapping[str, Any], root: Path, json_path: Path
) -> tuple[list[Sample], str | None]:
    """Each query asked twice, as in the paper: with the safe image and with the unsafe one."""
    where = f"{json_path}: chat[{index}]"
    queries = _text_list(entry, "queries", where)
    if queries is None:
        raise PoiseError(f"{where} has no field 'queries' (a list of text)")
    images = {
        side: _image(root / "chat", _text(entry, f"{side}_image_path", where), json_path)
        for side in SIDES
    }
    captions = {side: _caption(entry.get(f"{side}_image")) for side in SIDES}
    intent = _optional_text(entry, "intent")
    extras = _extra_fields(entry, CHAT_FIELDS)
    samples = []
    for q_index, query in enumerate(queries):
        pair_id = f"chat-{index}-{q_index}"
        for side in SIDES:
            samples.append(
                Sample(
                    id=f"{pair_id}-{side}",
                    benchmark=name,
                    variant=side,
                    query=query,
                    image=images[side],
                    expected=EXPECTED[side],
                    category=_optional_text(entry, "Type"),
                    pair_id=pair_id,
                    metadata={
                        **extras,
                        "intent": intent,
                        "side": side,
                        "entry": index,
                        "query_index": q_index,
                    },
                    oracle_perception=captions[side],
                    oracle_intent=intent,
                )
            )
    note = None if queries else f"chat[{index}] has no queries"
    return samples, note


def _embodied_samples(
    name: str, index: int, entry: Mapping[str, Any], root: Path, json_path: Path
) -> tuple[list[Sample], str | None]:
    """The i-th safe instruction with the safe scene, the i-th unsafe one with the unsafe scene."""
    where = f"{json_path}: embodied[{index}]"
    instructions = {side: _instructions(entry, side, where) for side in SIDES}
    images = {
        side: _image(root / "embodied", _text(entry, side, where), json_path) for side in SIDES
    }
    task = _optional_text(entry, "task")
    extras = _extra_fields(entry, EMBODIED_FIELDS)
    safe, unsafe = instructions["safe"], instructions["unsafe"]  # zip to the shorter list
    n_safe, n_unsafe = len(safe), len(unsafe)
    samples = []
    for i_index, pair in enumerate(zip(safe, unsafe, strict=False)):
        pair_id = f"embodied-{index}-{i_index}"
        for side, instruction in zip(SIDES, pair, strict=True):
            samples.append(
                Sample(
                    id=f"{pair_id}-{side}",
                    benchmark=name,
                    variant=side,
                    query=instruction,
                    image=images[side],
                    expected=EXPECTED[side],
                    category=_optional_text(entry, "category"),
                    pair_id=pair_id,
                    metadata={
                        **extras,
                        "task": task,
                        "side": side,
                        "entry": index,
                        "instruction_index": i_index,
                    },
                    oracle_perception=_caption(entry.get(f"observation_{side}")),
                    oracle_intent=task,
                )
            )
    note = None
    if n_safe != n_unsafe:
        note = (
            f"embodied[{index}] has {n_safe} safe vs {n_unsafe} unsafe instructions; "
            f"used the first {min(n_safe, n_unsafe)} pairs"
        )
    return samples, note


def _instructions(entry: Mapping[str, Any], side: str, where: str) -> list[str]:
    """The plural list when present and non-empty, else the singular field as a list of one."""
    plural = _text_list(entry, f"{side}_instructions", where)
    if plural:
        return plural
    single = _optional_text(entry, f"{side}_instruction")
    if single:
        return [single]
    raise PoiseError(
        f"{where} has neither '{side}_instructions' (a list of text) "
        f"nor '{side}_instruction' (text)"
    )


def _image(folder: Path, name: str, json_path: Path) -> ImageRef:
    """Confine the file name to its image folder; existence is checked later, decoding lazily."""
    return ImageRef(path=resolve_inside(folder, name, source=json_path))


# -- field helpers ---------------------------------------------------------------------------


def _text(entry: Mapping[str, Any], field: str, where: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value.strip():
        raise PoiseError(f"{where} has no text field {field!r}")
    return value.strip()


def _optional_text(entry: Mapping[str, Any], field: str) -> str | None:
    value = entry.get(field)
    return (value.strip() or None) if isinstance(value, str) else None


def _text_list(entry: Mapping[str, Any], field: str, where: str) -> list[str] | None:
    """None when the field is absent; a wrong shape is an error, not a silent skip."""
    value = entry.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PoiseError(f"{where} field {field!r} must be a list of non-empty text")
    return [v.strip() for v in value]


def _caption(value: Any) -> str | None:
    """Ground-truth scene text, without the stray leading ':' some MSSBench values carry."""
    if not isinstance(value, str):
        return None
    return value.strip().lstrip(":").strip() or None


def _extra_fields(entry: Mapping[str, Any], known: set[str]) -> dict[str, str]:
    """Keep unknown simple fields (e.g. a fork's 'reason') as text, so nothing is lost silently."""
    simple = (str, int, float, bool)
    return {k: str(v) for k, v in entry.items() if k not in known and isinstance(v, simple)}


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _summarise(notes: list[str]) -> list[str]:
    """At most a few notes for the run summary; the rest are counted."""
    if len(notes) <= 5:
        return notes
    return [*notes[:5], f"... and {len(notes) - 5} more such notes"]
