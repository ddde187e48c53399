"""Every CSV export goes through one writer, which keeps a spreadsheet from running what
people named: a text cell that starts like a formula is written as text."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import run_with_dependencies
from webapp.runs.exports import csv_text
from webapp.runs.submit import request_comparison


def parsed(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_text_that_a_spreadsheet_would_evaluate_is_written_as_text():
    risky = ['=HYPERLINK("http://x.example","click")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    rows = parsed(csv_text(["name", "value"], [[cell, 1.5] for cell in risky]))
    assert [r[0] for r in rows[1:]] == ["'" + cell for cell in risky]
    assert all(r[1] == "1.5" for r in rows[1:])


def test_numbers_and_ordinary_text_are_unchanged():
    rows = parsed(csv_text(["a", "b", "c"], [[-3, -0.25, "mlp-seed0"], [0, None, "a=b"]]))
    assert rows == [["a", "b", "c"], ["-3", "-0.25", "mlp-seed0"], ["0", "", "a=b"]]


@pytest.mark.django_db
def test_a_comparison_export_neutralises_a_checkpoint_name(client, owner, ckpt_a, ckpt_b, digits):
    comparison, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, n_permutations=2)
    run_with_dependencies(comparison)
    client.force_login(owner)
    name = '=HYPERLINK("http://evil.example","results")'
    comparison.checkpoint.name = name
    comparison.checkpoint.save(update_fields=["name"])
    response = client.get(f"/comparisons/{comparison.pk}/scores.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows and all(row["checkpoint_a"] == "'" + name for row in rows)
    assert [float(row["value"]) for row in rows] == [
        s.value for s in comparison.scores.order_by("id")
    ]
