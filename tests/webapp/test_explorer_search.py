"""The explorer's search finds samples by id, label, text or any metadata value, whatever the
case; a lasso's filter arrives as bits, one per sample."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from analysis.errors import InputError
from tests.formats import texts_jsonl
from webapp.catalog.ingest import ingest_dataset
from webapp.runs.explorer import parse_shown, search


@pytest.fixture
def texts(db, owner, workspace):
    dataset, _ = ingest_dataset(workspace, owner, io.BytesIO(texts_jsonl(40)), "t.jsonl", "texts")
    return dataset


def test_search_by_id_label_text_and_metadata(texts):
    ids = [f"t{i}" for i in range(40)]
    assert search(texts, "T3").tolist() == [i for i, s in enumerate(ids) if "t3" in s]
    assert search(texts, " s2 ").tolist() == [i for i in range(40) if i % 8 == 2]  # label s2
    cats = search(texts, "cat").tolist()  # "the cat sat on the mat", "a cat and a dog play"
    assert cats and all(i % 8 in (0, 5) for i in cats)
    words = texts.column("meta:words")
    labels = [f"s{i % 8}" for i in range(40)]
    assert search(texts, "6").tolist() == [
        i for i in range(40) if "6" in ids[i] or "6" in labels[i] or words[i] == 6
    ]
    assert search(texts, "no such thing").tolist() == []


@pytest.mark.parametrize("query", ["", "   ", "x" * 201])
def test_a_search_needs_one_to_200_characters(texts, query):
    with pytest.raises(InputError, match="1 to 200 characters"):
        search(texts, query)


def test_the_points_a_filter_shows_arrive_as_bits():
    mask = np.zeros(10, dtype=bool)
    mask[[0, 3, 9]] = True
    text = base64.b64encode(np.packbits(mask, bitorder="little").tobytes()).decode()
    assert parse_shown(text, 10).tolist() == mask.tolist()
    with pytest.raises(InputError, match="2 bytes"):
        parse_shown(base64.b64encode(b"\x01").decode(), 10)
    with pytest.raises(InputError, match="base64"):
        parse_shown("not base64!", 10)
