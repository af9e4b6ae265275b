"""The model factory: provider/model names, keys, image formats, replay, the real OpenAI client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import write_png

from poise.agents.invoke import ask, build_messages
from poise.agents.models.handle import load_model
from poise.agents.models.registry import providers
from poise.benchmarks.sample import ImageRef
from poise.errors import PoiseError
from poise.eval.testing.openai_server import MockOpenAIServer


def test_known_providers() -> None:
    assert {"openai", "anthropic", "openai-compatible", "hf", "replay"} <= set(providers())


@pytest.mark.parametrize("name", ["gpt-4o", "nosuch/gpt-4o", "openai/", "/x"])
def test_bad_model_names_list_the_providers(name: str) -> None:
    with pytest.raises(PoiseError) as info:
        load_model(name)
    assert "known providers" in str(info.value) and "openai-compatible" in str(info.value)


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("openai/gpt-4o", "OPENAI_API_KEY"),
        ("anthropic/claude-3-opus-20240229", "ANTHROPIC_API_KEY"),
    ],
)
def test_missing_api_key_names_the_variable(name: str, variable: str, monkeypatch) -> None:
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(PoiseError, match=f"set the environment variable {variable}"):
        load_model(name)


def test_openai_compatible_needs_a_base_url(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(PoiseError, match="--base-url"):
        load_model("openai-compatible/some-model")


def test_images_use_each_providers_own_format(monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    url = "data:image/png;base64,AAAA"
    anthropic = load_model("anthropic/claude-3-haiku-20240307").image_part(url)
    assert anthropic == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    assert load_model("openai/gpt-4o").image_part(url) == {
        "type": "image_url",
        "image_url": {"url": url},
    }


def test_replay_answers_by_sample_id_and_nulls_are_empty() -> None:
    model = load_model("replay/claude-3-opus")
    recorded = json.loads(
        (
            Path(__file__).parents[1] / "benchmarks/data/mossbench_responses/claude-3-opus.json"
        ).read_text()
    )
    null_pid = next(pid for pid, r in recorded["responses"].items() if r["response"] is None)
    messages = build_messages(model, "question")
    text, call = asyncio.run(
        ask(model, "baseline", messages, {"metadata": {"poise_sample_id": "1"}})
    )
    assert text == recorded["responses"]["1"]["response"] and call.model == "replay/claude-3-opus"
    empty, _ = asyncio.run(
        ask(model, "baseline", messages, {"metadata": {"poise_sample_id": null_pid}})
    )
    assert empty == ""
    with pytest.raises(PoiseError, match="no response for sample"):
        asyncio.run(ask(model, "baseline", messages, {"metadata": {"poise_sample_id": "nope"}}))


def test_replay_unknown_and_custom_recordings(tmp_path: Path) -> None:
    with pytest.raises(PoiseError, match="packaged: claude-3-haiku"):
        load_model("replay/no-such-recording")
    flat = tmp_path / "mine.json"
    flat.write_text(json.dumps({"7": "hello"}))
    model = load_model(f"replay/{flat}")
    text, _ = asyncio.run(
        ask(model, "s", build_messages(model, "q"), {"metadata": {"poise_sample_id": "7"}})
    )
    assert text == "hello"
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(PoiseError, match="not valid JSON"):
        load_model(f"replay/{tmp_path / 'bad.json'}")


def test_openai_compatible_through_a_real_http_server(tmp_path: Path) -> None:
    """The real openai client sends the image as a data URL and the key never shows up."""

    def reply(request) -> str:
        from io import BytesIO

        from PIL import Image

        colour = Image.open(BytesIO(request.images[0])).convert("RGB").getpixel((0, 0))
        return f"colour={colour} text={request.text}"

    image = ImageRef(path=write_png(tmp_path / "red.png", (250, 0, 0)))
    with MockOpenAIServer(reply=reply) as server:
        model = load_model("openai-compatible/test-vlm", base_url=server.base_url)
        messages = build_messages(
            model, "what colour?", image_url=image.data_url(), system="be brief"
        )
        text, call = asyncio.run(ask(model, "baseline", messages))
        assert (
            text == "colour=(250, 0, 0) text=be brief\nwhat colour?" or "colour=(250, 0, 0)" in text
        )
        assert server.requests[0].model == "test-vlm"
        assert call.input_tokens is not None and call.output_tokens is not None
        assert call.messages[1]["content"].startswith("<image>")
        assert "base64" not in json.dumps(call.model_dump())


def test_openai_provider_with_base_url_and_key(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123456")
    with MockOpenAIServer(reply=lambda r: "ok", require_api_key="sk-secret-value-123456") as server:
        model = load_model("openai/gpt-4o", base_url=server.base_url)
        text, _ = asyncio.run(ask(model, "baseline", build_messages(model, "hi")))
    assert text == "ok"
