"""The ``hf/`` provider, end to end, on a tiny random LLaVA built offline.

The model (CLIP vision tower + Llama text model, a few thousand weights), its word-level
tokenizer and its image processor are all constructed in code and saved to a temp dir, so
the test goes through the same ``AutoProcessor`` / ``AutoModelForImageTextToText``
``from_pretrained`` path a user's ``hf/<repo>`` takes, without any network.
"""

from __future__ import annotations  # noqa: I001 (ruff misreads poise.agents as third-party)

import asyncio
import base64
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from poise.agents.models.hf import HFVisionChatModel
from poise.agents.models.registry import get_chat_model
from poise.errors import PoiseError

WORDS = [
    "a",
    "the",
    "is",
    "what",
    "in",
    "this",
    "picture",
    "image",
    "safe",
    "unsafe",
    "red",
    "blue",
    "green",
    "colour",
    "describe",
    "you",
    "are",
    "helpful",
    "assistant",
    "yes",
    "no",
    "it",
    "of",
]
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "USER:", "ASSISTANT:", "SYSTEM:"]
TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}SYSTEM: {% elif m['role'] == 'user' %}USER: "
    "{% else %}ASSISTANT: {% endif %}"
    "{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image> {% else %}{{ p['text'] }} {% endif %}"
    "{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
SYSTEM_PROMPT = "you are a helpful assistant"
IMAGE_SIZE, PATCH = 16, 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH) ** 2  # CLS dropped by the "default" feature strategy


def build_tiny_llava(directory: Path) -> Path:
    """Save a random 1-layer LLaVA and its processor; nothing is downloaded."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    try:  # the PIL backend needs no torchvision
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor

    vocab = {word: i for i, word in enumerate(SPECIAL + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = ImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=TEMPLATE,
    )
    tiny = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "initializer_range": 0.5,
    }
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            **tiny, num_attention_heads=2, image_size=IMAGE_SIZE, patch_size=PATCH
        ),
        text_config=LlamaConfig(
            **tiny,
            vocab_size=len(vocab),
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=256,
            bos_token_id=vocab["<s>"],
            eos_token_id=vocab["</s>"],
            pad_token_id=vocab["<pad>"],
        ),
        image_token_index=vocab["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def chat(tiny_model_dir: Path) -> HFVisionChatModel:
    """Loaded once through the registry: the real ``from_pretrained`` path."""
    model = get_chat_model(f"hf/{tiny_model_dir}", max_new_tokens=6, batch_wait_ms=50)
    assert isinstance(model, HFVisionChatModel)
    return model


@pytest.fixture
def generate_spy(chat: HFVisionChatModel, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Batch sizes of every ``model.generate`` call, in order."""
    sizes: list[int] = []
    original = chat._model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        sizes.append(int(kwargs["input_ids"].shape[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(chat._model, "generate", spy)
    return sizes


def data_url(colour: tuple[int, int, int], size: tuple[int, int] = (24, 20)) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def ask(text: str, colour: tuple[int, int, int] | None = (200, 30, 30)) -> list[Any]:
    """What Poise's agents send: optional system prompt, image part first, then text."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if colour is not None:
        content.insert(0, {"type": "image_url", "image_url": {"url": data_url(colour)}})
    return [SystemMessage(content=SYSTEM_PROMPT), HumanMessage(content=content)]


def prompt_tokens(text: str, images: int = 1) -> int:
    """Token count of ``ask(text)`` after the template and the image-token expansion."""
    # SYSTEM: system words USER: <image>... words ASSISTANT:
    return 1 + len(SYSTEM_PROMPT.split()) + 1 + images * IMAGE_TOKENS + len(text.split()) + 1


def test_invoke_with_image_returns_text_and_usage(
    chat: HFVisionChatModel, generate_spy: list[int], tiny_model_dir: Path
) -> None:
    reply = chat.invoke(ask("what is in this picture"))

    assert isinstance(reply, AIMessage) and isinstance(reply.content, str)
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == prompt_tokens("what is in this picture")
    assert 1 <= usage["output_tokens"] <= 6
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert reply.response_metadata["model_name"] == str(tiny_model_dir)
    assert reply.response_metadata["finish_reason"] in {"stop", "length"}
    assert generate_spy == [1]


def test_concurrent_ainvoke_calls_share_one_generate(
    chat: HFVisionChatModel, generate_spy: list[int]
) -> None:
    questions = ["is it safe", "what colour is this image", "describe it", "yes"]
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), None]
    prompts = [ask(q, c) for q, c in zip(questions, colours, strict=True)]

    async def main() -> list[AIMessage]:
        return await asyncio.gather(*(chat.ainvoke(p) for p in prompts))

    replies = asyncio.run(main())

    assert generate_spy == [4]
    # Each caller gets its own row back: the prompt lengths differ, and so do the counts.
    expected = [
        prompt_tokens(q, images=int(c is not None)) for q, c in zip(questions, colours, strict=True)
    ]
    assert [r.usage_metadata["input_tokens"] for r in replies] == expected
    assert {r.response_metadata["batch_size"] for r in replies} == {4}
    # Left padding must not change greedy answers: the batch equals one-at-a-time runs.
    assert [r.content for r in replies] == [chat.invoke(p).content for p in prompts]
    assert generate_spy == [4, 1, 1, 1, 1]


def test_batches_are_capped_at_max_batch_size(chat: HFVisionChatModel, generate_spy) -> None:
    capped = HFVisionChatModel.from_model(
        chat._model, chat._processor, max_new_tokens=2, max_batch_size=2, batch_wait_ms=50
    )

    async def main() -> list[AIMessage]:
        return await asyncio.gather(*(capped.ainvoke(ask(f"is it {w}")) for w in WORDS[:5]))

    replies = asyncio.run(main())

    assert len(replies) == 5 and all(isinstance(r.content, str) for r in replies)
    assert generate_spy == [2, 2, 1]


def test_stop_sequences_and_per_call_max_new_tokens(chat: HFVisionChatModel) -> None:
    full = chat.invoke(ask("describe the picture"), max_new_tokens=3)
    assert full.usage_metadata["output_tokens"] <= 3
    words = full.content.split()
    if words:
        cut = chat.invoke(ask("describe the picture"), max_new_tokens=3, stop=[words[0]])
        assert cut.content == ""


def test_plain_prompt_without_chat_template(chat: HFVisionChatModel) -> None:
    """Processors saved without a template get the LLaVA-1.5 USER/ASSISTANT prompt."""
    chat_template, chat._processor.chat_template = chat._processor.chat_template, None
    try:
        reply = chat.invoke([HumanMessage(content=[{"type": "text", "text": "yes"}])])
    finally:
        chat._processor.chat_template = chat_template
    # USER: yes ASSISTANT:
    assert reply.usage_metadata["input_tokens"] == 3


def test_bad_path_is_a_one_line_poise_error(tmp_path: Path) -> None:
    with pytest.raises(PoiseError, match="cannot load hf model .*no such directory.*HF_TOKEN"):
        get_chat_model(f"hf/{tmp_path / 'no-such-model'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoiseError) as info:  # exists but holds no model: transformers' error
        get_chat_model(f"hf/{tmp_path / 'empty'}")
    assert str(info.value).startswith(f"cannot load hf model {tmp_path / 'empty'}: ")
    assert "\n" not in str(info.value)


def test_remote_image_urls_and_unknown_options_are_refused(chat: HFVisionChatModel) -> None:
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with pytest.raises(PoiseError, match="data URLs"):
        chat.invoke([HumanMessage(content=[remote, {"type": "text", "text": "what"}])])
    with pytest.raises(PoiseError, match="do not accept"):
        get_chat_model("hf/whatever", timeout=3)


def test_importing_the_provider_does_not_import_torch() -> None:
    code = (
        "import sys, poise.agents.models.hf; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_registered_default_is_the_models_own() -> None:
    from poise.agents.models import hf, hf_provider
    from poise.agents.models.registry import provider_defaults

    assert hf_provider.DEFAULT_MAX_NEW_TOKENS == hf.DEFAULT_MAX_NEW_TOKENS
    assert provider_defaults("hf/any-model")["max_tokens"] == hf.DEFAULT_MAX_NEW_TOKENS
