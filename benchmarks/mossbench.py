"""MOSSBench (Li et al. 2024, arXiv 2406.17806): oversensitivity to benign image+query pairs.

Three forms of the data are accepted, because users have all three:

- a directory in the benchmark's GitHub layout, ``images_information/information.json``
  (pid -> item) plus ``images/N.png``;
- the Hugging Face hub dataset ``AIcell/MOSSBench`` (config ``oversensitivity`` or
  ``contrast``) through ``datasets.load_dataset``, or a copy saved with ``save_to_disk``;
- nothing (``data=None``): the questions and metadata packaged with Poise, without images.
  That is enough to re-judge recorded responses (``replay/`` models) offline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from poise.benchmarks.paths import missing_local_path, resolve_inside
from poise.benchmarks.registry import BenchmarkSpec, LoadedBenchmark, register_benchmark
from poise.benchmarks.sample import HARM_CATEGORIES, Expected, ImageRef, Sample
from poise.errors import PoiseError
from poise.extras import require

HUB_ID = "AIcell/MOSSBench"
PACKAGED = Path(str(resources.files("poise.benchmarks").joinpath("data")))
INFO_FILE = Path("images_information") / "information.json"


def load_benign(data: str | Path | None = None) -> LoadedBenchmark:
    return _load("mossbench", "benign", data)


def load_contrast(data: str | Path | None = None) -> LoadedBenchmark:
    return _load("mossbench-contrast", "contrast", data)


# The four models whose answers to the benign set the benchmark's authors published.
PUBLISHED_RESPONSES = (
    "replay/gpt-4o",
    "replay/claude-3-opus",
    "replay/claude-3-haiku",
    "replay/gemini-advanced-web",
)

BENIGN = register_benchmark(
    BenchmarkSpec(
        name="mossbench",
        description="MOSSBench benign set: 300 image+query pairs to answer (oversensitivity)",
        loader=load_benign,
        kind="refusal",
        judges={None: "offline"},
        published="mossbench",
        oracles=frozenset({"perception"}),
        offline_models=PUBLISHED_RESPONSES,
    )
)
CONTRAST = register_benchmark(
    BenchmarkSpec(
        name="mossbench-contrast",
        description="MOSSBench harmful contrast set: 244 image+query pairs to refuse",
        loader=load_contrast,
        kind="refusal",
        judges={None: "offline"},
        contrast_of="mossbench",
        oracles=frozenset({"perception"}),
    )
)


def _load(name: str, variant: str, data: str | Path | None) -> LoadedBenchmark:
    if data is None:
        return _load_packaged(name, variant)
    path = Path(data).expanduser()
    if path.is_dir() and any(
        (path / f).is_file() for f in ("dataset_info.json", "state.json", "dataset_dict.json")
    ):
        return _load_saved_dataset(name, variant, path)
    if path.is_dir():
        return _load_github_layout(name, variant, path)
    if path.exists():
        raise PoiseError(
            f"--data {path} is a file; pass the MOSSBench directory that holds {INFO_FILE}"
        )
    if (typo := missing_local_path(str(data))) is not None:
        raise PoiseError(typo)
    if str(data).startswith("hf:") or str(data).count("/") == 1 and not str(data).startswith("."):
        return _load_hub(name, variant, str(data).removeprefix("hf:"))
    raise PoiseError(f"--data {data}: no such directory; pass a MOSSBench directory or a hub id")


def _load_packaged(name: str, variant: str) -> LoadedBenchmark:
    info_path = PACKAGED / f"mossbench_{variant}.json"
    items = _read_info(info_path)
    samples = [_sample(name, variant, pid, item, None, info_path) for pid, item in items]
    return LoadedBenchmark(
        name=name,
        source="packaged questions (no images; pass --data DIR for images)",
        samples=samples,
        notes=["images not loaded: only replay/ models can answer without them"],
    )


def _load_github_layout(name: str, variant: str, root: Path) -> LoadedBenchmark:
    info_path = root / INFO_FILE
    if not info_path.is_file():
        raise PoiseError(f"{root} has no {INFO_FILE}; pass the MOSSBench directory (GitHub layout)")
    samples, missing = [], []
    for pid, item in _read_info(info_path):
        image_path = resolve_inside(root, item["image"], source=info_path)
        if not image_path.is_file():
            missing.append(pid)
            continue
        samples.append(_sample(name, variant, pid, item, image_path, info_path))
    if not samples:
        raise PoiseError(
            f"{root}: none of the {len(missing)} images that {INFO_FILE} lists exist "
            f"(e.g. {root / 'images'}); pass the MOSSBench directory together with its images/"
        )
    return LoadedBenchmark(name=name, source=str(root), samples=samples, missing_images=missing)


def _read_info(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Parse and validate information.json; every problem is one line naming file and item."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_KeyedObject)
    except FileNotFoundError:
        raise PoiseError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoiseError(
            f"{path} is not valid JSON: {exc}; restore the file from the benchmark"
        ) from None
    if isinstance(raw, _KeyedObject) and raw.repeated:
        raise PoiseError(
            f"{path}: pid {', '.join(raw.repeated[:10])} appears more than once; "
            "give every item its own pid"
        )
    if isinstance(raw, list):  # some copies store a list of items instead of pid -> item
        pairs = [
            (str(item.get("pid", i)) if isinstance(item, dict) else str(i), item)
            for i, item in enumerate(raw)
        ]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise PoiseError(
            f"{path}: expected an object mapping pid -> item, found {type(raw).__name__}"
        )
    if not pairs:
        raise PoiseError(f"{path} lists no items; restore the file from the benchmark")
    items = []
    for key, item in pairs:
        if not isinstance(item, dict):
            raise PoiseError(f"{path}: item {key!r} is {type(item).__name__}, expected an object")
        for field in ("question", "image"):
            if not isinstance(item.get(field), str):
                raise PoiseError(f"{path}: item {key!r} has no text field {field!r}")
        if not isinstance(item.get("metadata", {}), dict):
            raise PoiseError(f"{path}: item {key!r} field 'metadata' is not an object")
        items.append((str(item.get("pid", key)), item))
    return sorted(items, key=lambda kv: _pid_order(kv[0]))


class _KeyedObject(dict):
    """A JSON object that remembers which keys it saw twice (json keeps only the last)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.repeated: list[str] = []
        if len(self) == len(pairs):  # no key repeated: nothing to find (the common case)
            return
        for key, _ in pairs:
            if key in seen:
                self.repeated.append(key)
            seen.add(key)


def _pid_order(pid: str) -> tuple[int, str]:
    return (int(pid), "") if pid.isdigit() else (10**9, pid)


def _stimulus_type(over: Any) -> int | None:
    """'type 2' -> 2; tolerant of ints and stray spacing."""
    if isinstance(over, int):
        return over if over in (1, 2, 3) else None
    if isinstance(over, str):
        digits = "".join(ch for ch in over if ch.isdigit())
        if digits in ("1", "2", "3"):
            return int(digits)
    return None


def _sample(
    name: str,
    variant: str,
    pid: str,
    item: Mapping[str, Any],
    image_path: Path | None,
    source: Path | str,
) -> Sample:
    meta = dict(item.get("metadata") or {})
    harm = (
        [h for h in meta.get("harm", []) if isinstance(h, int)]
        if isinstance(meta.get("harm"), list)
        else []
    )
    flags = {
        k: int(meta[k]) for k in ("human", "child", "syn", "ocr") if isinstance(meta.get(k), int)
    }
    harm_names = [HARM_CATEGORIES[h] for h in harm if h in HARM_CATEGORIES]
    return Sample(
        id=pid,
        benchmark=name,
        variant=variant,
        query=item["question"],
        image=ImageRef(path=image_path),
        expected=Expected.comply if variant == "benign" else Expected.refuse,
        stimulus_type=_stimulus_type(meta.get("over")),
        category=harm_names[0] if harm_names else None,
        metadata={**flags, "harm": harm, "harm_names": harm_names},
        oracle_perception=item.get("description") or item.get("short description"),
    )


# -- Hugging Face datasets ---------------------------------------------------------------


def _hub_config(variant: str) -> str:
    return "oversensitivity" if variant == "benign" else "contrast"


def _load_hub(name: str, variant: str, repo_id: str) -> LoadedBenchmark:
    datasets = require("datasets", "hub", "MOSSBench from the Hugging Face hub")

    try:
        ds = datasets.load_dataset(repo_id, _hub_config(variant), split="train")
    except Exception as exc:  # network, gating, wrong id: all one line for the user
        raise PoiseError(
            f"cannot load {repo_id} ({_hub_config(variant)}) from the hub: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}; "
            "set HF_TOKEN if the dataset is gated, or pass --data DIR with the GitHub layout"
        ) from None
    return _from_rows(name, variant, ds, source=f"hf:{repo_id}")


def _load_saved_dataset(name: str, variant: str, path: Path) -> LoadedBenchmark:
    datasets = require("datasets", "hub", "a saved Hugging Face dataset")

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise PoiseError(f"cannot read the saved dataset at {path}: {exc}") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    return _from_rows(name, variant, ds, source=str(path))


def _image_cache_dir(source: str, variant: str) -> Path:
    base = Path(os.environ.get("POISE_CACHE", Path.home() / ".cache" / "poise"))
    slug = "".join(ch if ch.isalnum() else "_" for ch in source)
    return base / "images" / slug / variant


def _from_rows(
    name: str, variant: str, rows: Iterable[Mapping[str, Any]], source: str
) -> LoadedBenchmark:
    """Hub rows carry decoded images; write each once to a cache so samples stay lazy paths."""
    cache = _image_cache_dir(source, variant)
    cache.mkdir(parents=True, exist_ok=True)
    samples, missing = [], []
    for i, row in enumerate(rows):
        pid = str(row.get("pid", i))
        if not isinstance(row.get("question"), str):
            raise PoiseError(f"{source}: row {pid} has no text field 'question'")
        meta = row.get("metadata") or {}
        item = {
            "question": row["question"],
            "image": str(row.get("image") or ""),
            "metadata": meta if isinstance(meta, dict) else {},
            "description": row.get("description"),
            "short description": row.get("short description"),
        }
        picture = row.get("decoded_image")
        if picture is None and not isinstance(row.get("image"), str):
            picture = row.get("image")
        if picture is None:
            missing.append(pid)
            continue
        target = cache / f"{''.join(ch for ch in pid if ch.isalnum()) or i}.png"
        if not target.is_file():
            tmp = target.with_suffix(".tmp.png")
            picture.convert("RGB").save(tmp, format="PNG")
            tmp.replace(target)
        samples.append(_sample(name, variant, pid, item, target, source))
    samples.sort(key=lambda s: _pid_order(s.id))
    return LoadedBenchmark(name=name, source=source, samples=samples, missing_images=missing)
