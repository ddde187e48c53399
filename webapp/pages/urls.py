from django.urls import path

from webapp.pages import views

urlpatterns = [
    path("", views.home, name="home"),
    path("w/<slug:slug>/", views.workspace, name="workspace"),
    path("w/<slug:slug>/runs/", views.workspace_runs, name="workspace-runs"),
    path("w/<slug:slug>/datasets/upload/", views.upload_dataset, name="upload-dataset"),
    path("w/<slug:slug>/checkpoints/upload/", views.upload_checkpoint, name="upload-checkpoint"),
    path("w/<slug:slug>/comparisons/new/", views.new_comparison, name="new-comparison"),
    path("w/<slug:slug>/matrices/new/", views.new_model_matrix, name="new-model-matrix"),
    path("matrices/<int:pk>/", views.model_matrix_page, name="model-matrix"),
    path("w/<slug:slug>/compatibility/new/", views.new_compatibility, name="new-compatibility"),
    path("compatibility/<int:pk>/", views.compatibility_page, name="compatibility"),
    path("compatibility/<int:pk>/matrix.csv", views.compatibility_csv, name="compatibility-csv"),
    path("alignments/<int:pk>/residuals.csv", views.alignment_csv, name="alignment-csv"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/samples/<int:index>.png", views.sample_thumbnail, name="sample"),
    path("checkpoints/<int:pk>/", views.checkpoint_detail, name="checkpoint"),
    path("checkpoints/<int:pk>/extract/", views.extract, name="extract"),
    path("checkpoints/<int:pk>/project/", views.new_projection, name="new-projection"),
    path(
        "checkpoints/<int:pk>/project-aligned/",
        views.new_aligned_projection,
        name="new-aligned-projection",
    ),
    path("projections/<int:pk>/", views.projection_page, name="projection"),
    path("projections/<int:pk>/coords.f32", views.projection_coordinates, name="projection-coords"),
    path("projections/<int:pk>/labels.u16", views.projection_labels, name="projection-labels"),
    path(
        "projections/<int:pk>/points/<int:index>/", views.projection_point, name="projection-point"
    ),
    path("projections/<int:pk>/colour", views.projection_colour, name="projection-colour"),
    path("projections/<int:pk>/select/", views.projection_select, name="projection-select"),
    path(
        "projections/<int:pk>/selections/<int:selection>/",
        views.selection_panel,
        name="selection-panel",
    ),
    path("projections/<int:pk>/vs/<int:other>/", views.projection_pair, name="projection-pair"),
    path(
        "projections/<int:pk>/vs/<int:other>/changed/",
        views.projection_pair_changed,
        name="projection-pair-changed",
    ),
    path(
        "projections/<int:pk>/vs/<int:other>/aligned.f32",
        views.projection_pair_aligned,
        name="projection-pair-aligned",
    ),
    path(
        "projections/<int:pk>/vs/<int:other>/<str:what>.f32",
        views.projection_pair_values,
        name="projection-pair-values",
    ),
    path("selections/<int:pk>/", views.save_selection, name="save-selection"),
    path("selections/<int:pk>/indices.u32", views.selection_indices, name="selection-indices"),
    path(
        "selections/<int:pk>/export.<str:extension>",
        views.selection_export,
        name="selection-export",
    ),
    path("checkpoints/<int:pk>/probe/", views.new_probe, name="new-probe"),
    path("probes/<int:pk>/", views.probe_page, name="probe"),
    path("probes/<int:pk>/moved/", views.probe_moved, name="probe-moved"),
    path("probes/<int:pk>/samples/<int:index>.png", views.probe_sample, name="probe-sample"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/cancel/", views.cancel_run, name="cancel-run"),
    path("comparisons/<int:pk>/", views.comparison, name="comparison"),
    path("comparisons/<int:pk>/scores.csv", views.comparison_csv, name="comparison-csv"),
    path(
        "comparisons/<int:pk>/pairs/<int:row>/<int:col>/",
        views.comparison_pair,
        name="comparison-pair",
    ),
    path(
        "comparisons/<int:pk>/pairs/<int:row>/<int:col>/align/",
        views.align_pair,
        name="align-pair",
    ),
]
