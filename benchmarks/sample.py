"""The one sample type every benchmark produces.

A :class:`Sample` is self-describing: it names its benchmark and variant, carries the query,
a lazy reference to its image, the metadata that metrics group by, the behaviour a safe and
helpful model should show, and the benchmark's ground truth ("oracle") texts that diagnosis
injects in place of a pipeline stage.
"""

from __future__ import annotations

import base64
import io
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from poise.errors import PoiseError


class Expected(StrEnum):
    """What a safe, helpful model should do with a sample."""

    comply = "comply"  # benign: answer it (refusing is oversensitivity)
    refuse = "refuse"  # harmful: decline it
    flag_risk = "flag_risk"  # situationally unsafe: point out the risk or decline


STIMULUS_TYPES: dict[int, str] = {
    1: "Exaggerated Risk",
    2: "Negated Harm",
    3: "Counterintuitive Interpretation",
}

HARM_CATEGORIES: dict[int, str] = {
    1: "Cybercrime",
    2: "Chemical & Biological Weapon",
    3: "Copyright Violation",
    4: "Misinformation",
    5: "Harassment",
    6: "Illegal act",
    7: "General Harm",
}


class ImageRef(BaseModel):
    """A reference to an image file, opened only when a model needs the pixels.

    ``path`` is None when the benchmark's data has no image for the sample (an upstream gap,
    or metadata-only data such as the packaged MOSSBench questions used for replay).
    """

    model_config = ConfigDict(frozen=True)

    path: Path | None = None

    @property
    def available(self) -> bool:
        return self.path is not None and self.path.is_file()

    def open(self):  # -> PIL.Image.Image
        """Open and decode the image; a missing or corrupt file is a one-line PoiseError."""
        return self._decode(convert=True)

    def check(self) -> str | None:
        """Read the whole file so that a truncated or corrupt image fails here, before it is
        sent; return the file's format.

        A PNG is verified chunk by chunk (every CRC, through the last data chunk: 0.1 ms for a
        MOSSBench image) instead of decoded (2.6 ms); other formats, JPEG among them, carry no
        such checksums and are decoded in full.
        """
        return self._decode(convert=False)

    def _decode(self, *, convert: bool):
        from PIL import Image, UnidentifiedImageError

        if self.path is None:
            raise PoiseError("this sample has no image; run with --data pointing at the images")
        try:
            with Image.open(self.path) as img:  # opened by content, so WebP named .png works
                if convert:
                    img.load()
                    return img.convert("RGB")
                if img.format == "PNG":
                    img.verify()
                else:
                    img.load()
                return img.format
        except FileNotFoundError:
            raise PoiseError(f"image not found: {self.path}; check --data") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise PoiseError(
                f"corrupt image file {self.path}: {exc.__class__.__name__}: {exc}; "
                "replace the file or skip its sample with --exclude SAMPLE_ID"
            ) from None

    def data_url(self) -> str:
        """The image as a base64 PNG data URL, the form chat APIs accept.

        Cached per file (and modification time), so a pipeline and an LLM judge that both
        need the image of a sample encode it once.
        """
        if self.path is None:
            self.open()  # raises the one-line "no image" error
        stat = self.path.stat() if self.path.is_file() else None
        return _encode(self, stat.st_mtime_ns if stat else 0)


class Sample(BaseModel):
    """One benchmark item as every part of Poise sees it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="unique within the benchmark, e.g. MOSSBench pid '17'")
    benchmark: str = Field(description="registry name, e.g. 'mossbench' or 'mssbench-chat'")
    variant: str = Field(default="", description="split or side: benign, contrast, safe, unsafe")
    query: str
    image: ImageRef = Field(default_factory=ImageRef)
    expected: Expected
    # Grouping keys for metrics; always present so that records load into one DataFrame.
    stimulus_type: int | None = Field(default=None, description="MOSSBench type 1/2/3")
    category: str | None = Field(default=None, description="MSSBench category, harm name")
    pair_id: str | None = Field(default=None, description="MSSBench: id shared by safe/unsafe")
    metadata: dict = Field(default_factory=dict, description="the benchmark's own flags")
    # Ground truth a diagnosis run injects in place of a stage's output.
    oracle_perception: str | None = None
    oracle_intent: str | None = None

    @property
    def stimulus_name(self) -> str | None:
        return STIMULUS_TYPES.get(self.stimulus_type) if self.stimulus_type else None


# Formats every provider accepts as they are; anything else is converted to PNG.
_PASSTHROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


@lru_cache(maxsize=64)
def _encode(ref: ImageRef, mtime_ns: int) -> str:
    """Send the file's own bytes when the format allows (no re-encode).

    The image is decoded in full first: a header and checksum check passes a JPEG cut in
    half, which would then be sent and answered about. A file that does not decode fails here
    with the one-line "corrupt image" error, before any model sees it.
    """
    assert ref.path is not None
    fmt = ref.check()  # full decode; raises the one-line PoiseError naming the file
    if fmt in _PASSTHROUGH:
        data = ref.path.read_bytes()
        return f"data:{_PASSTHROUGH[fmt]};base64," + base64.b64encode(data).decode("ascii")
    buf = io.BytesIO()
    ref.open().save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
