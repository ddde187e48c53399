"""The samples behind a number: the per-sample agreement's histogram has one bar per value the
statistic can take, so no bar is empty or doubled by binning."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.catalog.models import Blob
from webapp.runs.drilldown import agreement
from webapp.runs.models import Score

pytestmark = pytest.mark.django_db


def test_agreement_histogram_has_a_bar_per_number_of_neighbours_shared(digits):
    k = 4
    shared = np.array([0, 1, 1, 4, 4, 4, 2])
    jaccard = (shared / (2 * k - shared)).astype(np.float32)  # as stored: float32
    score = Score(parameters={"knn_k": k}, sample_agreement=Blob.store_array(jaccard))
    found = agreement(score, digits)
    bars = found["histogram"]
    assert [b["shared"] for b in bars] == [0, 1, 2, 3, 4]
    assert [b["count"] for b in bars] == [1, 2, 1, 0, 3]
    assert [b["jaccard"] for b in bars] == pytest.approx([0, 1 / 7, 2 / 6, 3 / 5, 1])
    assert found["tallest"] == 3 and bars[4]["height"] == 100
    assert found["mean_agreement"] == pytest.approx(jaccard.mean())
    # independent neighbourhoods of its 7 samples: 4 of the 6 others on each side share
    # j = 2, 3 or 4 with probabilities C(4, j) C(2, 4 - j) / C(6, 4) = 6/15, 8/15, 1/15
    chance = 6 / 15 * 2 / 6 + 8 / 15 * 3 / 5 + 1 / 15 * 4 / 4
    assert found["chance_agreement"] == pytest.approx(chance)
    assert [s["index"] for s in found["least"]][:1] == [0]
    assert [s["index"] for s in found["most"]][:3] == [5, 4, 3]
