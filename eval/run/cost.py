"""Cost before a run (``--dry-run``) and after it (recorded tokens at the price table).

**Before.** :func:`estimate_run` and :func:`estimate_sweep` run the real compiled pipelines,
the real stage cache and the real judges over the selected samples, with every model replaced
by a stand-in that answers at once and never touches the network. So the calls counted are
exactly the calls a run would make: the stages on each sample's path (``poise`` 4,
``baseline`` and ``cot`` 1, ``mssbench-multiagent`` 3 on chat samples and 2 on embodied ones),
oracle-skipped stages left out, a sweep's shared stages paid once (one
:class:`~poise.graphs.cache.StageCache` across the cells, keyed as in a real sweep), and the
calls of LLM judges. The prompts are the real prompts, system prompts included; only the
token counts and the answers are estimates:

- **Text tokens** = characters / characters-per-token of the model family
  (:data:`CHARS_PER_TOKEN`), plus 4 tokens per message and 3 per reply for the chat format.
  English prose measured against the vendors' tokenizers lands within about +-25 % of this
  rule (JSON, code and non-Latin scripts tokenize worse: expect more tokens).
- **Image tokens** follow each provider's published rule from the image's width and height,
  read from the file header without decoding pixels (:func:`image_tokens`).
- **Structured output** adds its JSON schema to the input (OpenAI ``response_format``;
  Anthropic's forced tool, plus Anthropic's 313-token tool-use system prompt).
- **Output tokens** are a typical fraction of the run's ``max_tokens`` cap (1024 unless the
  provider says otherwise): :data:`ANSWER_FRACTION` for the call that writes the final
  answer, :data:`STAGE_FRACTION` for intermediate stages and judges. The fractions come
  from the published MOSSBench answers packaged with Poise (GPT-4o: mean 1,934 characters,
  about 0.47 of 1024 tokens; Claude 3 Opus 862, about 0.24; Claude 3 Haiku 711, about 0.2);
  a model that writes long answers can cost up to twice the estimate, so
  :attr:`Estimate.output_cap_tokens` also gives the ceiling (every call at ``max_tokens``).

Taken together, expect a first real run within about +-30 % of the estimate for input
and within a factor of two for output; the summary puts the two side by side so a user can
see the real ratio on their first run.

**After.** :func:`recorded_cost` prices the ``input_tokens`` / ``output_tokens`` the
providers reported on each recorded call (reused calls cost nothing; calls without reported
usage are counted and said so). :func:`cost_summary` is what ``summary.json`` carries: the
recorded cost beside the dry-run estimate saved in the run directory
(:data:`ESTIMATE_FILE`).

**Prices** ship as ``eval/run/data/prices.toml``: dated list prices per provider and model
pattern, with each vendor's batch discount; ``--prices FILE`` replaces the table. A model
with no price is reported as "no price", never as $0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import hashlib
import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from poise.errors import PoiseError

ESTIMATE_FILE = "estimate.json"  # the dry-run estimate, saved in the run directory
PRICES_FILE = "prices.toml"
DEFAULT_MAX_TOKENS = 1024  # = poise.agents.models.api.DEFAULT_MAX_TOKENS (imported lazily)

# Output as a fraction of max_tokens (see the module docstring for where they come from).
# Samples traced per cell (evenly spread; counts scaled to all): about 4 ms of CPU each.
# On the 289 MOSSBench samples with images, 50 traced gave totals within 0.1 % of all 289.
TRACE_LIMIT = 50
ANSWER_FRACTION = 0.4
STAGE_FRACTION = 0.15

# Characters per token, English prose, by provider and model-name glob; the first match wins.
# OpenAI: o200k (gpt-4o and later) and cl100k (gpt-4, 3.5) both ~4 characters per token on
# English. Anthropic's tokenizer is less dense (~3.5). Google documents "about 4 characters".
# Open models (Llama 3, Qwen2, Mistral) measure 3.5-4.2; 3.8 splits the difference.
CHARS_PER_TOKEN: tuple[tuple[str, str, float], ...] = (
    ("openai", "*", 4.0),
    ("anthropic", "*", 3.5),
    ("google", "*", 4.0),
    ("*", "*", 3.8),
)
MESSAGE_OVERHEAD = 4  # tokens of chat formatting per message
REPLY_OVERHEAD = 3  # tokens that prime the assistant's reply
ANTHROPIC_TOOL_OVERHEAD = 313  # Anthropic's tool-use system prompt, tool_choice forced

_SIZE_MARK = "poise-estimate-size-"  # stands in for image bytes: the stand-in reads the size


# -- prices -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for the models whose name matches ``pattern``."""

    pattern: str
    input: float
    output: float
    note: str = ""

    @property
    def specificity(self) -> int:
        return sum(1 for ch in self.pattern if ch not in "*?[]")


@dataclass(frozen=True)
class ProviderPrices:
    name: str
    as_of: date
    source: str
    note: str = ""
    batch_discount: float = 0.0
    free: bool = False
    models: tuple[ModelPrice, ...] = ()


@dataclass(frozen=True)
class Price:
    """The price that applies to one model (after a batch discount), and where it came from."""

    model: str
    input: float  # USD per million tokens
    output: float
    as_of: date
    batch: bool = False

    def of(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


@dataclass(frozen=True)
class PriceTable:
    providers: dict[str, ProviderPrices]
    source: str  # the file the table was read from

    def price(self, model: str, *, batch: bool = False) -> Price | None:
        """The price of ``provider/model``; None when the table has none (never a silent 0)."""
        provider, _, name = model.partition("/")
        table = self.providers.get(provider)
        if table is None:
            return None
        if table.free:
            return Price(model, 0.0, 0.0, table.as_of, batch)
        name = name.removeprefix("models/")  # Gemini's own spelling of model ids
        matches = [m for m in table.models if fnmatch.fnmatchcase(name, m.pattern)]
        if not matches:
            return None
        best = max(matches, key=lambda m: m.specificity)  # ties: the first in the file
        factor = 1.0 - table.batch_discount if batch else 1.0
        if batch and table.batch_discount == 0:
            return None  # no published batch price: say so rather than guess
        return Price(model, best.input * factor, best.output * factor, table.as_of, batch)

    def dates(self) -> dict[str, str]:
        return {name: p.as_of.isoformat() for name, p in sorted(self.providers.items())}


def load_prices(path: Path | str | None = None) -> PriceTable:
    """The shipped price table, or the user's ``--prices FILE`` (same format, checked)."""
    if path is None:
        return _packaged_prices()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PoiseError(f"--prices {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PoiseError(f"--prices {path}: cannot read it ({exc.__class__.__name__})") from None
    return parse_prices(text, str(path))


@cache
def _packaged_prices() -> PriceTable:
    text = resources.files("poise.eval.run").joinpath("data", PRICES_FILE).read_text("utf-8")
    return parse_prices(text, f"poise/eval/run/data/{PRICES_FILE}")


def parse_prices(text: str, source: str) -> PriceTable:
    """Validate a price table; every problem is one line naming the file and the key."""
    where = f"--prices {source}" if not source.startswith("poise/") else source

    def fail(detail: str) -> PoiseError:
        return PoiseError(f"{where}: {detail}; see eval/run/data/{PRICES_FILE} for the format")

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"not valid TOML ({exc})") from None
    if data.get("schema") != 1:
        raise fail("needs `schema = 1` at the top")
    providers = data.get("providers")
    if not isinstance(providers, dict) or not providers:
        raise fail("has no [providers.NAME] table")
    out: dict[str, ProviderPrices] = {}
    for name, table in providers.items():
        key = f"providers.{name}"
        if not isinstance(table, dict):
            raise fail(f"{key} must be a table")
        unknown = set(table) - {"as_of", "source", "note", "batch_discount", "free", "models"}
        if unknown:
            raise fail(f"{key} has unknown key {sorted(unknown)[0]!r}")
        as_of = table.get("as_of")
        if not isinstance(as_of, date):
            raise fail(f"{key}.as_of must be a date such as 2025-08-15 (unquoted)")
        source_note = table.get("source")
        if not isinstance(source_note, str) or not source_note.strip():
            raise fail(f"{key}.source must say where the prices come from")
        discount = table.get("batch_discount", 0.0)
        if not _number(discount) or not 0 <= discount < 1:
            raise fail(f"{key}.batch_discount must be a fraction from 0 to below 1, e.g. 0.5")
        free = table.get("free", False)
        if not isinstance(free, bool):
            raise fail(f"{key}.free must be true or false")
        rows = table.get("models", [])
        if not isinstance(rows, list) or (not rows and not free):
            raise fail(f"{key} needs [[{key}.models]] entries (or free = true)")
        models = []
        for i, row in enumerate(rows):
            mkey = f"{key}.models[{i}]"
            if not isinstance(row, dict):
                raise fail(f"{mkey} must be a table")
            bad = set(row) - {"match", "input", "output", "note"}
            if bad:
                raise fail(f"{mkey} has unknown key {sorted(bad)[0]!r}")
            pattern = row.get("match")
            if not isinstance(pattern, str) or not pattern.strip():
                raise fail(f'{mkey}.match must be a model name or glob, e.g. "gpt-4o*"')
            for side in ("input", "output"):
                value = row.get(side)
                if not _number(value) or value < 0:
                    raise fail(f"{mkey}.{side} must be USD per million tokens, a number >= 0")
            models.append(
                ModelPrice(
                    pattern.strip(),
                    float(row["input"]),
                    float(row["output"]),
                    str(row.get("note", "")),
                )  # fmt: skip
            )
        out[name] = ProviderPrices(
            name=name,
            as_of=as_of if not hasattr(as_of, "date") else as_of.date(),  # datetime -> date
            source=source_note.strip(),
            note=str(table.get("note", "")),
            batch_discount=float(discount),
            free=free,
            models=tuple(models),
        )
    return PriceTable(out, source)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# -- tokens -----------------------------------------------------------------------------------


@cache
def chars_per_token(model: str) -> float:
    provider, _, name = model.partition("/")
    for prov, pattern, value in CHARS_PER_TOKEN:
        if fnmatch.fnmatchcase(provider, prov) and fnmatch.fnmatchcase(name, pattern):
            return value
    return 3.8


def text_tokens(text: str, model: str) -> int:
    """Estimated tokens of ``text`` for ``model`` (characters / characters-per-token)."""
    return math.ceil(len(text) / chars_per_token(model)) if text else 0


def image_tokens(model: str, width: int, height: int) -> int:
    """Input tokens of one image of ``width`` x ``height`` pixels, by the provider's rule.

    - OpenAI (detail "auto" = high for large images; Poise sets no detail): fit within
      2048 x 2048, then scale the shorter side down to 768; 85 + 170 per 512-px tile.
      gpt-4o-mini bills the same pixels at 2,833 + 5,667 per tile. gpt-4.1-mini / -nano and
      o4-mini count 32-px patches (at most 1,536) times 1.62 / 2.46 / 1.72.
    - Anthropic: scale down until the long edge is at most 1,568 px and the image is at most
      about 1,600 tokens; tokens = width x height / 750.
    - Google Gemini 2.x: 258 when both sides are at most 384 px; larger images are cut into
      768 x 768 tiles of 258 tokens each. Gemini 1.5: 258 per image whatever its size.
    - Anything else (openai-compatible/, hf/): the OpenAI tile rule, as a middle estimate;
      open models differ widely (Qwen2-VL: one token per 28 x 28 px).
    """
    if width <= 0 or height <= 0:
        return 0
    provider, _, name = model.partition("/")
    name = name.removeprefix("models/")
    if provider == "anthropic":
        w, h = _fit(width, height, 1568)
        return min(math.ceil(w * h / 750), 1600)
    if provider == "google":
        if name.startswith("gemini-1.") or (width <= 384 and height <= 384):
            return 258
        return 258 * math.ceil(width / 768) * math.ceil(height / 768)
    patch_factor = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72}
    for prefix, factor in patch_factor.items():
        if provider == "openai" and name.startswith(prefix):
            patches = math.ceil(width / 32) * math.ceil(height / 32)
            if patches > 1536:  # scaled down to fit 1,536 patches
                scale = math.sqrt(1536 * 32 * 32 / (width * height))
                patches = min(1536, math.ceil(width * scale / 32) * math.ceil(height * scale / 32))
            return math.ceil(patches * factor)
    w, h = _fit(width, height, 2048)
    short = min(w, h)
    if short > 768:
        w, h = w * 768 / short, h * 768 / short
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    if provider == "openai" and name.startswith("gpt-4o-mini"):
        return 2833 + 5667 * tiles
    return 85 + 170 * tiles


def _fit(width: int, height: int, longest: int) -> tuple[float, float]:
    scale = min(1.0, longest / max(width, height))
    return width * scale, height * scale


def image_size(path: Path | None) -> tuple[int, int] | None:
    """Width and height from the file's header (Pillow reads no pixels); None if unreadable."""
    if path is None:
        return None
    return _image_size(str(path))


@cache
def _image_size(path: str) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


# -- estimates --------------------------------------------------------------------------------


@dataclass
class Line:
    """Calls and tokens of one stage (or judge) with one model."""

    stage: str
    model: str
    calls: int = 0  # calls made (paid)
    reused: int = 0  # calls a shared stage saved
    input_tokens: int = 0
    output_tokens: int = 0
    output_cap_tokens: int = 0  # every call at max_tokens: the ceiling
    cost: float | None = None  # USD at the price table; None: no price for this model

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "model": self.model,
            "calls": self.calls,
            "reused_calls": self.reused,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "output_cap_tokens": self.output_cap_tokens,
            "cost_usd": _round(self.cost),
        }


@dataclass
class Money:
    """A total that knows what it could not price."""

    usd: float = 0.0
    unpriced: tuple[str, ...] = ()  # models with calls but no price
    priced: bool = False  # at least one line had a price

    def __str__(self) -> str:
        if not self.unpriced:
            return f"${self.usd:,.2f}" if self.usd >= 0.01 or self.usd == 0 else f"${self.usd:.4f}"
        names = ", ".join(self.unpriced)
        if not self.priced:
            return f"no price ({names})"
        return f"${self.usd:,.2f} + no price for {names}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "usd": _round(self.usd) if self.priced else None,
            "unpriced_models": list(self.unpriced),
            "text": str(self),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


class _LineTotals:
    """Totals over ``lines`` (one per provider/model and stage): what an estimate and a
    recorded cost both report."""

    lines: list[Line]

    @property
    def calls(self) -> int:
        return sum(line.calls for line in self.lines)

    @property
    def reused_calls(self) -> int:
        return sum(line.reused for line in self.lines)

    @property
    def input_tokens(self) -> int:
        return sum(line.input_tokens for line in self.lines)

    @property
    def output_tokens(self) -> int:
        return sum(line.output_tokens for line in self.lines)


@dataclass
class Estimate(_LineTotals):
    """What one run (one sweep cell) will ask, and what it will cost at the price table."""

    label: str
    samples: int
    lines: list[Line] = field(default_factory=list)
    run_id: str | None = None  # the RunSpec's run_id: summarize pairs an estimate with its run
    cost: Money = field(default_factory=Money)
    cost_cap: Money = field(default_factory=Money)  # every call at max_tokens
    notes: list[str] = field(default_factory=list)
    prices_as_of: dict[str, str] = field(default_factory=dict)

    @property
    def output_cap_tokens(self) -> int:
        return sum(line.output_cap_tokens for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        """The form saved as ``estimate.json`` and carried into ``summary.json``."""
        return {
            "label": self.label,
            "run_id": self.run_id,
            "samples": self.samples,
            "calls": self.calls,
            "reused_calls": self.reused_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "output_cap_tokens": self.output_cap_tokens,
            "cost": self.cost.as_dict(),
            "cost_cap": self.cost_cap.as_dict(),
            "stages": [line.as_dict() for line in self.lines],
            "notes": self.notes,
            "prices_as_of": self.prices_as_of,
            "method": "offline estimate: characters per token, providers' image rules, "
            f"output {ANSWER_FRACTION:g} / {STAGE_FRACTION:g} of max_tokens; "
            "about +-30% on input, up to 2x on output",
        }


def price_lines(
    lines: Sequence[Line], prices: PriceTable, *, batch: bool = False
) -> tuple[Money, Money]:
    """Fill each line's cost; the total and the ceiling (outputs at max_tokens)."""
    total, cap = Money(), Money()
    unpriced: set[str] = set()
    for line in lines:
        if line.calls == 0:
            line.cost = 0.0
            continue
        price = prices.price(line.model, batch=batch)
        if price is None:
            line.cost = None
            unpriced.add(line.model)
            continue
        line.cost = price.of(line.input_tokens, line.output_tokens)
        total.usd += line.cost
        cap.usd += price.of(line.input_tokens, line.output_cap_tokens or line.output_tokens)
        total.priced = cap.priced = True
    total.unpriced = cap.unpriced = tuple(sorted(unpriced))
    return total, cap


async def _estimate_cells(
    cells: Sequence[tuple[Any, Sequence[Any]]],
    *,
    prompt_dirs: tuple[Path, ...],
    max_tokens: int | None,
    trace_limit: int | None,
) -> list[tuple[list[Line], list[str]]]:
    """Trace every cell's pipeline over its samples with one shared stage cache."""
    from poise.graphs.cache import StageCache

    stage_cache = StageCache()
    results = []
    for spec, samples in cells:
        results.append(
            await _trace_cell(
                spec,
                samples,
                stage_cache,
                prompt_dirs=prompt_dirs,
                max_tokens=max_tokens,
                trace_limit=trace_limit,
            )
        )
    return results


async def _trace_cell(
    spec: Any,
    samples: Sequence[Any],
    stage_cache: Any,
    *,
    prompt_dirs: tuple[Path, ...],
    max_tokens: int | None,
    trace_limit: int | None,
) -> tuple[list[Line], list[str]]:
    """Run one cell's pipeline and judges over (a spread of) its samples with stand-ins.

    Mirrors the runner's context: a stage with its own model or sampling parameters gets its
    own handle, and the shared cache is scoped by the stage model's non-default parameters,
    so cells that differ in temperature or max_tokens share nothing (as in a real sweep).
    """
    from poise.agents.framing import frame_query
    from poise.agents.prompts import get_prompt
    from poise.graphs.registry import get_pipeline
    from poise.graphs.state import PipelineContext, oracle_prefill

    pipeline = get_pipeline(spec.pipeline)
    handles: dict[str, Any] = {}

    def handle(name: str, params: Mapping[str, Any] | None = None) -> Any:
        key = json.dumps([name, dict(params or {})], sort_keys=True, default=str)
        if key not in handles:
            handles[key] = _stand_in(name, dict(params or {}), max_tokens)
        return handles[key]

    params_for = getattr(spec, "params_for", lambda stage=None: {})
    own = sorted(set(spec.stage_models) | set(getattr(spec, "stage_model_params", {}) or {}))
    context = PipelineContext(
        model=handle(spec.model, params_for()),
        stage_models={
            stage: handle(spec.stage_models.get(stage, spec.model), params_for(stage))
            for stage in own
        },
        system_prompt=get_prompt(spec.system_prompt, "system", prompt_dirs)
        if spec.system_prompt
        else None,
        prompt_stages=frozenset(spec.prompt_stages) if spec.prompt_stages is not None else None,
        oracle=frozenset(spec.oracle),
        setting=spec.setting,
        stage_cache=None,
    )
    context = dataclasses.replace(context, stage_cache=_scoped(stage_cache, context))
    judges, judge_notes = _stand_in_judges(spec, handle)
    sends_images = any(
        not name.startswith("replay/") for name in (spec.model, *spec.stage_models.values())
    )
    lines: dict[tuple[str, str], Line] = {}
    notes = list(judge_notes)
    no_image = unreadable = 0

    def line(stage: str, model: str) -> Line:
        return lines.setdefault((stage, model), Line(stage, model))

    for sample in samples:
        if sample.image.path is None:
            no_image += 1
        elif image_size(sample.image.path) is None:
            unreadable += 1
    traced = spread(samples, trace_limit)
    for sample in traced:
        size = image_size(sample.image.path)
        image_url = f"{_SIZE_MARK}{size[0]}x{size[1]}" if size and sends_images else None
        state: dict[str, Any] = {
            "sample": sample,
            "query": frame_query(sample, spec.setting),
            "image_url": image_url,
            "calls": [],
            "stages": {},
        }
        state.update(oracle_prefill(sample, context.oracle))
        final = await pipeline.graph.ainvoke(state, context=context)
        calls = final.get("calls", [])
        for i, call in enumerate(calls):
            fraction = ANSWER_FRACTION if i == len(calls) - 1 else STAGE_FRACTION
            cap = context.model_for(call.stage).chat.cap
            target = line(call.stage, call.model)
            if call.cached:
                target.reused += 1
                continue
            target.calls += 1
            target.input_tokens += call.input_tokens or 0
            target.output_tokens += round(fraction * cap)
            target.output_cap_tokens += cap
        judged = _with_size(sample, size)
        for judge, stand_in in list(judges):
            before = len(stand_in.chat.log)
            answer = _filler(int(ANSWER_FRACTION * context.model.chat.cap * 4), "answer")
            await judge.judge(judged, answer)
            if len(stand_in.chat.log) == before:
                judges.remove((judge, stand_in))  # an offline judge: no calls, no cost
            cap = stand_in.chat.cap
            for tokens in stand_in.chat.log[before:]:
                target = line(f"judge:{judge.name}", stand_in.name)
                target.calls += 1
                target.input_tokens += tokens
                target.output_tokens += round(STAGE_FRACTION * cap)
                target.output_cap_tokens += cap
    epochs = max(1, int(getattr(spec, "epochs", 1) or 1))  # --epochs K asks each sample K times
    if traced and (len(traced) < len(samples) or epochs > 1):
        _scale(lines.values(), epochs * len(samples) / len(traced))
    if len(traced) < len(samples):
        notes.append(f"traced {len(traced)} of {len(samples)} samples, evenly spread; scaled up")
    if no_image and sends_images:
        notes.append(f"{no_image} samples have no image (the run needs --data with images)")
    if unreadable:
        notes.append(f"{unreadable} images could not be read; counted without image tokens")
    if any(model.startswith("unknown/") for _, model in lines):
        notes.append("an LLM judge has no --judge-model (and no key picks its default): no price")
    return list(lines.values()), notes


def _scoped(stage_cache: Any, context: Any) -> Any:
    """The run's view of the shared cache, keyed as the runner keys it (epoch 0)."""
    if stage_cache is None or not hasattr(stage_cache, "scoped"):
        return stage_cache
    from poise.agents.models.registry import non_default_params

    def scope(stage: str) -> dict[str, Any]:
        model = context.model_for(stage)
        changed = non_default_params(model.name, model.params)
        return {"params": changed} if changed else {}

    return stage_cache.scoped(scope)


def output_cap(model: str, params: Mapping[str, Any], override: int | None = None) -> int:
    """The most tokens one call may answer: ``--max-tokens``-style override, the run's
    ``max_tokens`` parameter, the provider's default (API 1024), else 1024."""
    if override:
        return int(override)
    for key in ("max_tokens", "max_new_tokens"):
        if params.get(key):
            return int(params[key])
    try:
        from poise.agents.models.registry import provider_defaults

        defaults = provider_defaults(model)
    except (PoiseError, ImportError):
        defaults = {}
    for key in ("max_tokens", "max_new_tokens"):
        if defaults.get(key):
            return int(defaults[key])
    return DEFAULT_MAX_TOKENS


def spread(samples: Sequence[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` samples evenly spread over ``samples`` (all of them when None).

    The same positions in every cell of a sweep, so cells that share stages still share them.
    """
    n = len(samples)
    if limit is None or n <= limit:
        return list(samples)
    return [samples[i * n // limit] for i in range(limit)]


def _scale(lines: Iterable[Line], factor: float) -> None:
    """Scale traced counts to all samples: exact for calls when every sample takes the same
    path (the usual case: routes depend on the benchmark, not the sample)."""
    for line in lines:
        line.calls = round(line.calls * factor)
        line.reused = round(line.reused * factor)
        line.input_tokens = round(line.input_tokens * factor)
        line.output_tokens = round(line.output_tokens * factor)
        line.output_cap_tokens = round(line.output_cap_tokens * factor)


def _stand_in_judges(spec: Any, handle: Any) -> tuple[list[tuple[Any, Any]], list[str]]:
    """The run's judges, each given a stand-in model (offline judges ignore it)."""
    from poise.eval.judges.base import get_judge

    judge_model = spec.judge_model
    notes: list[str] = []
    if judge_model is None:
        judge_model = _default_judge_model(spec)
    out = []
    judge_params = getattr(spec, "judge_model_params", {}) or {}
    for name in spec.judge_names():
        stand_in = handle(judge_model or "unknown/default-judge-model", judge_params)
        try:
            judge = get_judge(name, model=judge_model, setting=spec.setting, handle=stand_in)
        except TypeError:  # a judge factory that takes no handle: it calls no model here
            judge = get_judge(name, model=judge_model, setting=spec.setting)
        out.append((judge, stand_in))
    return out, notes


def _default_judge_model(spec: Any) -> str | None:
    """The model an LLM judge would pick by itself (from the keys set), without calling it."""
    from poise.eval.judges.base import get_judge

    for name in spec.judge_names():
        try:
            judge = get_judge(name, setting=spec.setting)
        except PoiseError:
            continue
        model = getattr(getattr(judge, "handle", None), "name", None)
        if model:
            return model
    return None


def _with_size(sample: Any, size: tuple[int, int] | None) -> Any:
    """The sample with an image reference that reports its size instead of encoding pixels."""
    image = _sized_image_class()(path=sample.image.path, size=size)
    return sample.model_copy(update={"image": image})


@cache
def _sized_image_class() -> type:
    from poise.benchmarks.sample import ImageRef

    class SizedImage(ImageRef):
        """Reports the image's size in place of its bytes; only the stand-in model reads it."""

        size: tuple[int, int] | None = None

        @property
        def available(self) -> bool:
            return self.size is not None

        def data_url(self) -> str:
            assert self.size is not None
            return f"{_SIZE_MARK}{self.size[0]}x{self.size[1]}"

    return SizedImage


def _filler(chars: int, seed: str) -> str:
    """Prose-like text of about ``chars`` characters that differs with ``seed``."""
    head = hashlib.sha256(seed.encode()).hexdigest()[:12]
    body = "word " * max(0, (chars - len(head)) // 5)
    return f"{head} {body}".strip()


@cache
def _stand_in_chat_class() -> type:
    """A LangChain chat model that answers at once and counts the input tokens it was sent.

    Its answer is prose of the typical length of an intermediate stage, or a JSON object of
    that length when a schema was asked for, so later stages see realistic upstream text. The
    answer carries a digest of the input: stages downstream of a differing input differ, and
    the stage cache shares exactly what a real sweep shares.
    """
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.runnables import RunnableLambda

    class StandIn(BaseChatModel):
        model_name: str
        reply_chars: int
        cap: int  # max_tokens of this model's calls
        log: list[int] = []

        @property
        def _llm_type(self) -> str:
            return "poise-estimate"

        def _reply(
            self, messages: list[Any], schema: dict[str, Any] | None, tool: bool
        ) -> AIMessage:
            text, images = _message_text(messages)
            tokens = REPLY_OVERHEAD + MESSAGE_OVERHEAD * len(messages)
            tokens += text_tokens(text, self.model_name)
            tokens += sum(image_tokens(self.model_name, w, h) for w, h in images)
            if schema is not None:
                tokens += text_tokens(json.dumps(schema), self.model_name)
                tokens += ANTHROPIC_TOOL_OVERHEAD if tool else 0
            self.log.append(tokens)
            seed = hashlib.sha256(text.encode()).hexdigest()
            reply = _filler(self.reply_chars, seed)
            if schema is not None:
                reply = json.dumps(_json_for(schema, reply))
            usage = {"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens}
            return AIMessage(content=reply, usage_metadata=usage)

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
            schema = (kwargs.get("response_format") or {}).get("json_schema", {}).get("schema")
            message = self._reply(messages, schema, tool=False)
            return ChatResult(generations=[ChatGeneration(message=message)])

        async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
            return self._generate(messages, stop, None, **kwargs)  # no thread hand-off

        def with_structured_output(self, schema, *, include_raw=False, **kwargs):  # type: ignore[override]
            def run(messages: Any) -> dict[str, Any]:
                raw = self._reply(list(messages), schema, tool=True)
                return {"raw": raw, "parsed": json.loads(raw.content), "parsing_error": None}

            return RunnableLambda(run)

    return StandIn


def _stand_in(name: str, params: dict[str, Any], override: int | None) -> Any:
    from poise.agents.models.handle import ModelHandle
    from poise.agents.models.registry import split_model_name

    if not name.startswith("unknown/"):
        split_model_name(name)  # a malformed or unknown provider: the run's own one-line error
    cap = output_cap(name, params, override)
    chars = int(STAGE_FRACTION * cap * chars_per_token(name))
    chat = _stand_in_chat_class()(model_name=name, reply_chars=chars, cap=cap, log=[])
    return ModelHandle(name=name, chat=chat, params=params)


def _message_text(messages: Iterable[Any]) -> tuple[str, list[tuple[int, int]]]:
    """All text sent, and the (width, height) of every image part."""
    texts: list[str] = []
    images: list[tuple[int, int]] = []
    for message in messages:
        content = getattr(message, "content", message)
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                blob = json.dumps(part, default=str)
                start = blob.find(_SIZE_MARK)
                if start >= 0:
                    dims = blob[start + len(_SIZE_MARK) :].split('"')[0]
                    w, _, h = dims.partition("x")
                    images.append((int(w), int(h)))
    return "\n".join(texts), images


def _json_for(schema: Mapping[str, Any], text: str) -> dict[str, Any]:
    """A JSON object that fits ``schema``, its string fields sharing ``text``."""
    props: Mapping[str, Any] = schema.get("properties", {})
    strings = [k for k, v in props.items() if _kind(v, schema) == "string"]
    share = max(1, len(text) // max(1, len(strings)))
    out: dict[str, Any] = {}
    for i, (key, prop) in enumerate(props.items()):
        kind = _kind(prop, schema)
        enum = _enum(prop, schema)
        if enum:
            out[key] = enum[0]
        elif kind == "string":
            out[key] = text[i * share : (i + 1) * share] if i < len(strings) else ""
            out[key] = out[key] or text[:share]
        elif kind in ("number", "integer"):
            out[key] = 0.5 if kind == "number" else 0
        elif kind == "boolean":
            out[key] = False
        elif kind == "array":
            out[key] = [text[:share]]
        else:
            out[key] = None
    return out


def _resolve(prop: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = prop.get("$ref")
    if ref:
        return schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
    for option in prop.get("anyOf", []):
        if option.get("type") != "null":
            return _resolve(option, schema)
    return prop


def _kind(prop: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    return _resolve(prop, schema).get("type")


def _enum(prop: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Any] | None:
    resolved = _resolve(prop, schema)
    return resolved.get("enum") or ([resolved["const"]] if "const" in resolved else None)


def _label(spec: Any) -> str:
    name = getattr(spec, "directory_name", None)
    return name() if callable(name) else f"{spec.benchmark}/{spec.pipeline}/{spec.model}"


def estimate_run(
    spec: Any,
    samples: Sequence[Any],
    *,
    prices: PriceTable | None = None,
    batch: bool = False,
    max_tokens: int | None = None,
    prompt_dirs: tuple[Path, ...] = (),
    trace_limit: int | None = TRACE_LIMIT,
) -> Estimate:
    """Calls, tokens and cost of running ``spec`` (a RunSpec) over ``samples``; no network.

    Pass only the samples a run would still ask (not those already recorded) to estimate a
    resumed run.
    """
    return estimate_sweep(
        [(spec, samples)],
        prices=prices,
        batch=batch,
        max_tokens=max_tokens,
        prompt_dirs=prompt_dirs,
        trace_limit=trace_limit,
    )[0]


def estimate_sweep(
    cells: Sequence[tuple[Any, Sequence[Any]]],
    *,
    prices: PriceTable | None = None,
    batch: bool = False,
    max_tokens: int | None = None,
    prompt_dirs: tuple[Path, ...] = (),
    trace_limit: int | None = TRACE_LIMIT,
) -> list[Estimate]:
    """One estimate per cell ``(RunSpec, samples)``, in order; shared stages paid once.

    Stage reuse is decided by the real stage cache keyed as in :func:`poise.eval.run.sweep.run_sweep`:
    the first cell that needs a stage's inputs pays for it, later cells count it as reused.
    Use :func:`total` for the sweep's total.
    """
    prices = prices or load_prices()
    traced = _run_async(
        _estimate_cells(
            cells, prompt_dirs=prompt_dirs, max_tokens=max_tokens, trace_limit=trace_limit
        )
    )
    out = []
    for (spec, samples), (lines, notes) in zip(cells, traced, strict=True):
        cost, ceiling = price_lines(lines, prices, batch=batch)
        out.append(
            Estimate(
                label=_label(spec),
                run_id=getattr(spec, "run_id", None),
                samples=len(samples),
                lines=lines,
                cost=cost,
                cost_cap=ceiling,
                notes=notes,
                prices_as_of=prices.dates(),
            )
        )
    return out


def _run_async(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    raise PoiseError("estimate_run/estimate_sweep are synchronous: call them outside an event loop")


def total(estimates: Sequence[Estimate], label: str = "total") -> Estimate:
    """The sum of several estimates (a sweep's total row)."""
    merged: dict[tuple[str, str], Line] = {}
    for estimate in estimates:
        for line in estimate.lines:
            key = (line.stage, line.model)
            target = merged.setdefault(key, Line(line.stage, line.model, cost=0.0))
            target.calls += line.calls
            target.reused += line.reused
            target.input_tokens += line.input_tokens
            target.output_tokens += line.output_tokens
            target.output_cap_tokens += line.output_cap_tokens
            target.cost = None if None in (target.cost, line.cost) else target.cost + line.cost
    out = Estimate(
        label=label, samples=sum(e.samples for e in estimates), lines=list(merged.values())
    )
    out.cost = _sum_money(e.cost for e in estimates)
    out.cost_cap = _sum_money(e.cost_cap for e in estimates)
    out.notes = [f"{e.label}: {n}" for e in estimates for n in e.notes]
    out.prices_as_of = estimates[0].prices_as_of if estimates else {}
    return out


def _sum_money(items: Iterable[Money]) -> Money:
    out = Money()
    unpriced: set[str] = set()
    for item in items:
        out.usd += item.usd
        out.priced = out.priced or item.priced
        unpriced.update(item.unpriced)
    out.unpriced = tuple(sorted(unpriced))
    return out


# -- cost after: recorded usage ---------------------------------------------------------------


@dataclass
class Cost(_LineTotals):
    """Recorded calls and tokens of a run, at the price table."""

    lines: list[Line] = field(default_factory=list)
    cost: Money = field(default_factory=Money)
    calls_without_usage: int = 0  # the provider reported no token counts for these

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "reused_calls": self.reused_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "calls_without_usage": self.calls_without_usage,
            "cost": self.cost.as_dict(),
            "stages": [
                {k: v for k, v in line.as_dict().items() if k != "output_cap_tokens"}
                for line in self.lines
            ],
        }


def recorded_cost(records: Iterable[Any], prices: PriceTable, *, batch: bool = False) -> Cost:
    """What a run's recorded calls cost: provider-reported tokens at ``prices``.

    Reused calls (a sweep's shared stages) cost nothing and are counted apart. LLM judges'
    calls count too once a verdict carries ``input_tokens`` / ``output_tokens``.
    """
    lines: dict[tuple[str, str], Line] = {}
    missing = 0
    for record in records:
        for call in record.calls:
            line = lines.setdefault((call.stage, call.model), Line(call.stage, call.model))
            if call.cached:
                line.reused += 1
                continue
            line.calls += 1
            if call.input_tokens is None and call.output_tokens is None:
                missing += 1
            line.input_tokens += call.input_tokens or 0
            line.output_tokens += call.output_tokens or 0
        for name, verdict in (record.verdicts or {}).items():
            tokens_in = getattr(verdict, "input_tokens", None)
            tokens_out = getattr(verdict, "output_tokens", None)
            if not verdict.model or (tokens_in is None and tokens_out is None):
                continue
            key = (f"judge:{name}", verdict.model)
            line = lines.setdefault(key, Line(*key))
            line.calls += 1
            line.input_tokens += tokens_in or 0
            line.output_tokens += tokens_out or 0
    result = Cost(lines=list(lines.values()), calls_without_usage=missing)
    result.cost, _ = price_lines(result.lines, prices, batch=batch)
    return result


def cost_summary(
    directory: Path,
    records: Iterable[Any],
    prices: PriceTable | None = None,
    *,
    batch: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The ``cost`` entry of ``summary.json``: recorded cost beside the saved estimate.

    An ``estimate.json`` of another run (another ``run_id``) is ignored rather than compared.
    """
    prices = prices or load_prices()
    recorded = recorded_cost(records, prices, batch=batch)
    out: dict[str, Any] = {
        "recorded": recorded.as_dict(),
        "prices": prices.source,
        "prices_as_of": prices.dates(),
        "estimate": None,
    }
    path = Path(directory) / ESTIMATE_FILE
    if path.is_file():
        try:
            estimate = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            estimate = None
        ours = run_id is None or estimate_run_id(estimate) in (None, run_id)
        if isinstance(estimate, dict) and ours:
            out["estimate"] = {
                k: estimate.get(k)
                for k in ("calls", "input_tokens", "output_tokens", "cost", "samples")
            }
            out["recorded_vs_estimate"] = _ratios(recorded, estimate)
    return out


def estimate_run_id(estimate: object) -> str | None:
    return estimate.get("run_id") if isinstance(estimate, dict) else None


def _ratios(recorded: Cost, estimate: Mapping[str, Any]) -> dict[str, float | None]:
    def ratio(actual: float | None, expected: Any) -> float | None:
        if actual is None or not isinstance(expected, int | float) or not expected:
            return None
        return round(actual / expected, 3)

    usd = (estimate.get("cost") or {}).get("usd")
    return {
        "calls": ratio(recorded.calls, estimate.get("calls")),
        "input_tokens": ratio(recorded.input_tokens, estimate.get("input_tokens")),
        "output_tokens": ratio(recorded.output_tokens, estimate.get("output_tokens")),
        "cost": ratio(recorded.cost.usd if recorded.cost.priced else None, usd),
    }


def save_estimate(directory: Path, estimate: Estimate) -> Path:
    """Write ``estimate.json`` into a run directory (atomically, like every run file)."""
    from poise.eval.run.records import write_json

    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / ESTIMATE_FILE
    write_json(path, estimate.as_dict())
    return path


def cost_total(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sweep's total of its cells' ``cost`` entries (for ``sweep.json``)."""
    recorded = {"calls": 0, "reused_calls": 0, "input_tokens": 0, "output_tokens": 0}
    estimated = {"calls": 0, "input_tokens": 0, "output_tokens": 0}
    money, est_money = Money(), Money()
    cells_with_estimate = 0
    for summary in summaries:
        entry = summary.get("cost") or {}
        rec = entry.get("recorded") or {}
        for key in recorded:
            recorded[key] += int(rec.get(key) or 0)
        _add_money(money, rec.get("cost") or {})
        est = entry.get("estimate")
        if est:
            cells_with_estimate += 1
            for key in estimated:
                estimated[key] += int(est.get(key) or 0)
            _add_money(est_money, est.get("cost") or {})
    return {
        "recorded": {**recorded, "cost": money.as_dict()},
        "estimate": {**estimated, "cost": est_money.as_dict()} if cells_with_estimate else None,
        "cells_with_estimate": cells_with_estimate,
        "cells": len(summaries),
    }


def _add_money(total: Money, entry: Mapping[str, Any]) -> None:
    if entry.get("usd") is not None:
        total.usd += float(entry["usd"])
        total.priced = True
    total.unpriced = tuple(sorted(set(total.unpriced) | set(entry.get("unpriced_models") or [])))


# -- rows for tables (the CLI and the report print them) --------------------------------------

ESTIMATE_HEADERS = (
    "cell",
    "samples",
    "calls",
    "reused",
    "input tok",
    "output tok",
    "est. cost",
    "at most",
)
COST_HEADERS = ("run", "calls", "reused", "input tok", "output tok", "cost", "estimated")


def estimate_rows(
    estimates: Sequence[Estimate], *, with_total: bool = True
) -> list[tuple[str, ...]]:
    """One row per cell (and a total row when there is more than one cell)."""
    rows = [_estimate_row(e) for e in estimates]
    if with_total and len(estimates) > 1:
        rows.append(_estimate_row(total(estimates)))
    return rows


def _estimate_row(e: Estimate) -> tuple[str, ...]:
    return (
        e.label,
        f"{e.samples:,}",
        f"{e.calls:,}",
        f"{e.reused_calls:,}",
        f"{e.input_tokens:,}",
        f"{e.output_tokens:,}",
        str(e.cost),
        str(e.cost_cap),
    )


def stage_rows(estimate: Estimate | Cost) -> list[tuple[str, ...]]:
    """Per stage and model: calls, reused, tokens, cost (for a ``--verbose`` breakdown)."""
    return [
        (
            line.stage,
            line.model,
            f"{line.calls:,}",
            f"{line.reused:,}",
            f"{line.input_tokens:,}",
            f"{line.output_tokens:,}",
            "no price" if line.cost is None else f"${line.cost:,.4f}",
        )
        for line in estimate.lines
    ]


STAGE_HEADERS = ("stage", "model", "calls", "reused", "input tok", "output tok", "cost")


def cost_rows(
    summaries: Sequence[Mapping[str, Any]], *, with_total: bool = True
) -> list[tuple[str, ...]]:
    """One row per run summary (its ``cost`` entry): recorded beside estimated."""
    rows = []
    calls = reused = tokens_in = tokens_out = 0
    usd = 0.0
    priced = False
    unpriced: set[str] = set()
    for summary in summaries:
        entry = summary.get("cost") or {}
        recorded = entry.get("recorded") or {}
        money = recorded.get("cost") or {}
        estimate = entry.get("estimate") or {}
        rows.append(
            (
                Path(str(summary.get("directory", "?"))).name,
                f"{recorded.get('calls', 0):,}",
                f"{recorded.get('reused_calls', 0):,}",
                f"{recorded.get('input_tokens', 0):,}",
                f"{recorded.get('output_tokens', 0):,}",
                money.get("text", "no price"),
                (estimate.get("cost") or {}).get("text", "-") if estimate else "-",
            )
        )
        calls += recorded.get("calls", 0)
        reused += recorded.get("reused_calls", 0)
        tokens_in += recorded.get("input_tokens", 0)
        tokens_out += recorded.get("output_tokens", 0)
        if money.get("usd") is not None:
            usd += money["usd"]
            priced = True
        unpriced.update(money.get("unpriced_models", []))
    if with_total and len(rows) > 1:
        money_total = Money(usd, tuple(sorted(unpriced)), priced)
        rows.append(
            (
                "total",
                f"{calls:,}",
                f"{reused:,}",
                f"{tokens_in:,}",
                f"{tokens_out:,}",
                str(money_total),
                "-",
            )  # fmt: skip
        )
    return rows
