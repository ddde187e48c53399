"""A training run's checkpoints as a series: the dynamics run's matrices equal the pairwise
comparisons, a grown series computes only its new cells and statistics, and the page and API
show the series with its logged metrics."""

from __future__ import annotations

import pytest

from analysis.errors import InputError
from tests.conftest import checkpoint_from, nudged_mlp_bytes, run_with_dependencies
from webapp.runs.models import KeptPreparation, Run, SeriesCell
from webapp.runs.results import comparison_matrix, dynamics_view
from webapp.runs.submit import request_comparison, request_dynamics
from workers.tasks import dynamics as run_dynamics

pytestmark = pytest.mark.django_db

LAYERS = ["block1", "head"]


def add_step(workspace, owner, step: int):
    """Step ``step`` of the run "mlp": the same network moved further at every step."""
    checkpoint = checkpoint_from(
        workspace, owner, nudged_mlp_bytes(0, 0.05 * step), f"mlp-step{step}"
    )
    checkpoint.seed_group, checkpoint.step = "mlp", step * 100
    checkpoint.metrics = {"loss": 2.0 / (step + 1), "epoch": step}
    checkpoint.save()
    return checkpoint


def dynamics(owner, workspace, digits, measure="cka/linear"):
    run, created = request_dynamics(owner, workspace, "mlp", digits, LAYERS, measure=measure)
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    return run


def test_matrices_equal_the_pairwise_comparisons_of_the_same_checkpoints(owner, workspace, digits):
    series = [add_step(workspace, owner, step) for step in range(4)]
    view = dynamics_view(dynamics(owner, workspace, digits))
    assert view["steps"] == [0, 100, 200, 300]
    assert [layer["layer"] for layer in view["layers"]] == LAYERS
    comparison = run_with_dependencies(
        request_comparison(owner, series[0], series[2], digits, LAYERS, LAYERS, n_permutations=1)[0]
    )
    pairwise = comparison_matrix(comparison)["value"]
    for position, layer in enumerate(view["layers"]):
        assert layer["matrix"]["value"][0][2] == pytest.approx(pairwise[position][position])
        assert layer["matrix"]["value"][2][0] == layer["matrix"]["value"][0][2]
        assert layer["to_final"][-1] == pytest.approx(1.0)
        # the network moves further from its final weights the earlier the step
        assert layer["to_final"] == sorted(layer["to_final"])
        assert len(layer["statistics"]["effective_rank"]) == 4
    assert view["metrics"]["loss"] == [2.0, 1.0, 2.0 / 3, 0.5]
    assert view["label_chance"] is not None and 0 < view["label_chance"] < 0.5


def test_a_new_checkpoint_computes_only_the_new_cells_and_statistics(owner, workspace, digits):
    for step in range(4):
        add_step(workspace, owner, step)
    first = dynamics(owner, workspace, digits)
    assert first.timings["cells_computed"] == 2 * 10  # 4 × 5 / 2 per layer: symmetric
    add_step(workspace, owner, 4)
    grown = dynamics(owner, workspace, digits)
    assert grown.pk != first.pk
    assert grown.timings["cells_computed"] == 2 * 5
    assert grown.timings["cells_reused"] == 2 * 10
    assert grown.timings["statistics_computed"] == 2
    assert SeriesCell.objects.count() == 2 * 15
    before = dynamics_view(first)["layers"][0]["matrix"]["value"]
    after = dynamics_view(grown)["layers"][0]["matrix"]["value"]
    assert [row[:4] for row in after[:4]] == before
    # the same request again is the same run
    again, created = request_dynamics(owner, workspace, "mlp", digits, LAYERS)
    assert again.pk == grown.pk and not created


def test_a_grown_series_does_not_search_the_earlier_steps_knn_graphs_again(
    owner, workspace, digits
):
    for step in range(3):
        add_step(workspace, owner, step)
    dynamics(owner, workspace, digits, measure="knn/jaccard")
    assert KeptPreparation.objects.count() == 2 * 3  # one graph per step and layer
    add_step(workspace, owner, 3)
    grown = dynamics(owner, workspace, digits, measure="knn/jaccard")
    assert KeptPreparation.objects.count() == 2 * 4
    kept = dynamics_view(grown)["layers"]
    # the runner again with nothing stored: the same values, every cell computed
    SeriesCell.objects.all().delete()
    KeptPreparation.objects.all().delete()
    Run.objects.filter(pk=grown.pk).update(state=Run.State.RUNNING)  # as a worker holds it
    assert run_dynamics(grown)["cells_computed"] == 2 * 10
    assert dynamics_view(grown)["layers"] == kept


def test_an_asymmetric_measure_computes_every_cell(owner, workspace, digits):
    for step in range(3):
        add_step(workspace, owner, step)
    run = dynamics(owner, workspace, digits, measure="regression/ridge-r2")
    assert run.timings["cells_computed"] == 2 * 9


def test_a_series_needs_two_checkpoints_with_the_layers(owner, workspace, digits):
    add_step(workspace, owner, 0)
    with pytest.raises(InputError, match="needs two"):
        request_dynamics(owner, workspace, "mlp", digits)
    add_step(workspace, owner, 1)
    with pytest.raises(InputError, match="no layer"):
        request_dynamics(owner, workspace, "mlp", digits, ["nope"])


def test_series_and_dynamics_pages(client, owner, outsider, workspace, digits):
    for step in range(3):
        add_step(workspace, owner, step)
    client.force_login(owner)
    page = client.get(f"/w/{workspace.slug}/series/?group=mlp")
    assert page.status_code == 200
    html = page.content.decode()
    assert "mlp-step2" in html and "Compute dynamics" in html
    assert 'data-chart="metric:loss"' in html
    refused = client.post(
        f"/w/{workspace.slug}/series/dynamics/?group=mlp",
        {"dataset": digits.pk, "layers": ["nope"], "pooling": "mean", "measure": "cka/linear"},
    )
    assert refused.status_code == 400
    asked = client.post(
        f"/w/{workspace.slug}/series/dynamics/?group=mlp",
        {"dataset": digits.pk, "layers": LAYERS, "pooling": "mean", "measure": "cka/linear"},
    )
    assert asked.status_code == 302
    run = Run.objects.get(kind=Run.Kind.DYNAMICS)
    assert asked["Location"] == f"/dynamics/{run.pk}/"
    run_with_dependencies(run)
    html = client.get(f"/dynamics/{run.pk}/").content.decode()
    assert 'data-chart="to_final"' in html and 'data-heatmap="matrix-2"' in html
    assert "Linear CKA" in html
    add_step(workspace, owner, 3)
    assert "1 more checkpoint" in client.get(f"/dynamics/{run.pk}/").content.decode()
    client.force_login(outsider)
    assert client.get(f"/dynamics/{run.pk}/").status_code == 404
    assert client.get(f"/w/{workspace.slug}/series/?group=mlp").status_code == 404
