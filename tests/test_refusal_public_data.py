"""Integrity of eval/judges/data/refusal_public.jsonl, the public human-labelled refusal set.

The file is data only (no judge logic): a meta header line, then one row per model response
with the source's own human label mapped to "refuse" / "comply".
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "eval" / "judges" / "data" / "refusal_public.jsonl"
ROW_KEYS = {"source", "id", "model", "family", "question", "response", "label", "source_label"}
SOURCE_KEYS = {"name", "repo", "path", "licence", "citation", "label_mapping", "how_labelled"}
# Held back as an external test set: must never be a source here.
FORBIDDEN = ("xstest", "mossbench", "turningpoint-ai")


@pytest.fixture(scope="module")
def lines() -> list[dict]:
    raw = DATA.read_bytes().decode("utf-8")  # must be valid UTF-8
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def meta(lines) -> dict:
    assert set(lines[0]) == {"meta"}
    return lines[0]["meta"]


@pytest.fixture(scope="module")
def rows(lines) -> list[dict]:
    return lines[1:]


def test_meta_header(meta):
    assert meta["created"] and meta["note"]
    assert meta["sources"]
    for src in meta["sources"]:
        assert set(src) >= SOURCE_KEYS, src.get("name")
        text = json.dumps(src).lower()
        assert not any(word in text for word in FORBIDDEN), src["name"]


def test_row_shape(rows, meta):
    names = {s["name"] for s in meta["sources"]}
    assert len(rows) >= 100
    for r in rows:
        assert set(r) == ROW_KEYS, r.get("id")
        assert all(isinstance(r[k], str) and r[k].strip() for k in ROW_KEYS), r["id"]
        assert r["source"] in names
        assert r["label"] in {"refuse", "comply"}
        assert len(r["response"]) <= 4000


def test_no_duplicates(rows):
    ids = Counter((r["source"], r["id"]) for r in rows)
    assert not [k for k, n in ids.items() if n > 1]
    texts = Counter((r["model"], r["question"], r["response"]) for r in rows)
    assert not [k for k, n in texts.items() if n > 1]


def test_labels_follow_source_labels(rows):
    mapping = {"rejected": "refuse", "complied": "comply"}
    for r in rows:
        if r["source"] == "chatgpt-refusals":
            assert mapping[r["source_label"]] == r["label"], r["id"]
        else:  # HarmBench: only unanimous "behaviour exhibited" rows, all comply
            assert r["source_label"] == "human_0=1,human_1=1,human_2=1", r["id"]
            assert r["label"] == "comply", r["id"]


def test_both_labels_and_several_families(rows):
    labels = Counter(r["label"] for r in rows)
    assert labels["refuse"] >= 50 and labels["comply"] >= 50
    assert len({r["family"] for r in rows}) >= 5
