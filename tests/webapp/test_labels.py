"""Labels that tell things apart: a comparison's two sides name their pooling where that is
what differs (one checkpoint against itself, or two poolings)."""

from __future__ import annotations

import pytest

from webapp.pages.templatetags.runs import sides
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


def test_the_sides_of_a_comparison_name_the_pooling_that_tells_them_apart(ckpt_a, ckpt_b):
    def run(a, b, **params):
        return Run(kind=Run.Kind.COMPARE, checkpoint=a, checkpoint_b=b, params=params)

    assert sides(run(ckpt_a, ckpt_b, pooling="mean")) == "mlp-seed0 vs mlp-seed1"
    assert sides(run(ckpt_a, ckpt_a, pooling="mean")) == "mlp-seed0 (mean) vs mlp-seed0 (mean)"
    assert sides(run(ckpt_a, ckpt_a, pooling="mean", pooling_b="last")) == (
        "mlp-seed0 (mean) vs mlp-seed0 (last)"
    )
    assert sides(run(ckpt_a, ckpt_b, pooling="cls", pooling_b="mean")) == (
        "mlp-seed0 (cls) vs mlp-seed1 (mean)"
    )
