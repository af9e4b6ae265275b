"""``replay/<name>``: a chat model that answers from recorded responses.

This is how published responses are re-judged offline: the runner tags each call with the
sample id (LangChain run metadata ``poise_sample_id``), and the model returns the response
recorded for that id. A recorded ``null`` (an upstream API failure) comes back as an empty
message, which judges count as no response.

Packaged recordings: the four models whose MOSSBench responses the benchmark's authors
published (CC BY-SA 4.0, arXiv 2406.17806), kept with the benchmark's data
(``poise/benchmarks/data/mossbench_responses``). Any JSON file of the same shape works too;
its ``benchmark`` field says which benchmark it answers.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poise.agents.models.registry import register_provider
from poise.errors import PoiseError, known_names

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

# Run metadata every model call carries (LangChain run metadata): which sample, benchmark and
# draw (--epochs) it belongs to. Replays answer by sample; batching keys requests by all three.
SAMPLE_ID_KEY = "poise_sample_id"
BENCHMARK_KEY = "poise_benchmark"
EPOCH_KEY = "poise_epoch"


def packaged_replays() -> dict[str, Path]:
    """The recordings that ship with the benchmarks' data, by name."""
    folder = resources.files("poise.benchmarks").joinpath("data", "mossbench_responses")
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    }


def read_recording(path: Path) -> tuple[str, dict[str, str | None], str | None]:
    """Read ``{"model", "benchmark"?, "responses": {id: {"response"}}}`` or ``{id: response}``.

    Returns the model label, the responses and the benchmark they answer (None if unsaid).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PoiseError(f"recording {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoiseError(f"recording {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PoiseError(f"recording {path}: expected an object of id -> response")
    label = str(raw.get("model", path.stem))
    benchmark = raw.get("benchmark") if isinstance(raw.get("benchmark"), str) else None
    table = raw.get("responses", raw)
    if not isinstance(table, dict):
        raise PoiseError(f"recording {path}: 'responses' must be an object of id -> response")
    responses: dict[str, str | None] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            value = value.get("response")
        if value is not None and not isinstance(value, str):
            raise PoiseError(f"recording {path}: response for {key!r} is not text")
        responses[str(key)] = value
    return label, responses, benchmark


@cache
def replay_model_class() -> type[BaseChatModel]:
    """The replay chat model class, defined on first use so that listing providers imports
    no LangChain."""
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class ReplayChatModel(BaseChatModel):
        """Returns the recorded response for the sample named in the run metadata."""

        recording: str
        responses: dict[str, str | None]
        benchmark: str | None = None  # the benchmark the recording answers, when known

        @property
        def _llm_type(self) -> str:
            return "poise-replay"

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            metadata = run_manager.metadata if run_manager else {}
            sample_id = metadata.get(SAMPLE_ID_KEY)
            asked = metadata.get(BENCHMARK_KEY)
            if self.benchmark and asked and asked != self.benchmark:
                # Sample ids repeat across benchmarks (the contrast set reuses the benign pids):
                # answering anyway would silently score the wrong responses.
                raise PoiseError(
                    f"replay/{self.recording} holds responses to {self.benchmark}, not {asked}"
                )
            if sample_id is None:
                raise PoiseError(
                    "replay models need the sample id in the run metadata (poise run sets it)"
                )
            if str(sample_id) not in self.responses:
                raise PoiseError(f"replay/{self.recording} has no response for sample {sample_id}")
            text = self.responses[str(sample_id)]
            message = AIMessage(
                content=text or "",
                response_metadata={
                    "model_name": f"replay/{self.recording}",
                    "recorded_null": text is None,
                },
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

    return ReplayChatModel


@register_provider(
    "replay",
    "answers from recorded responses (packaged: "
    + ", ".join(packaged_replays())
    + "; or a JSON path)",
    example="replay/gpt-4o",
)
def make_replay(model: str, *, base_url: str | None = None, **params) -> BaseChatModel:
    known = packaged_replays()
    path = known.get(model) or Path(model).expanduser()
    if not path.is_file():
        raise PoiseError(
            f"unknown recording {model!r}; packaged: {known_names(known)}, or pass a JSON file path"
        )
    _, responses, benchmark = read_recording(path)
    return replay_model_class()(recording=model, responses=responses, benchmark=benchmark)
