from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from webapp.api import units, views, weight_spaces
from webapp.api.nested import NestedViewSet
from webapp.api.stitchings import StitchingViewSet

router = DefaultRouter()
router.include_format_suffixes = False  # no <route>.json twins: the handlers take no format
router.register("workspaces", views.WorkspaceViewSet, basename="workspace")
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("checkpoints", views.CheckpointViewSet, basename="checkpoint")
router.register("runs", views.RunViewSet, basename="run")
router.register("activations", views.ActivationSetViewSet, basename="activationset")
router.register("extractions", views.ExtractionViewSet, basename="extraction")
router.register("comparisons", views.ComparisonViewSet, basename="comparison")
router.register("measures", views.MeasureViewSet, basename="measure")
router.register("model-matrices", views.ModelMatrixViewSet, basename="model-matrix")
router.register("alignments", views.AlignmentViewSet, basename="alignment")
router.register("dynamics", views.DynamicsViewSet, basename="dynamics")
router.register("series", views.SeriesViewSet, basename="series")
router.register("compatibility", views.CompatibilityViewSet, basename="compatibility")
router.register("projections", views.ProjectionViewSet, basename="projection")
router.register(
    "aligned-projections", views.AlignedProjectionViewSet, basename="aligned-projection"
)
router.register("probes", views.ProbeViewSet, basename="probe")
router.register("nested", NestedViewSet, basename="nested")
router.register("transformations", views.TransformationViewSet, basename="transformation")
router.register("uploads", views.UploadViewSet, basename="upload")
router.register("selections", views.SelectionViewSet, basename="selection")
router.register("weight-spaces", weight_spaces.WeightSpaceViewSet, basename="weight-space")
router.register("unit-matchings", units.UnitMatchingViewSet, basename="unit-matching")
router.register("stitchings", StitchingViewSet, basename="stitching")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The schema to read and try: Swagger UI, from drf-spectacular-sidecar's files (served
    # from this site: no CDN, no validator service).
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("workers/", views.WorkersView.as_view(), name="workers-overview"),
    path("", include(router.urls)),
    # Last: a URL no route matches (an id outside a route's pattern, a typo) gets the API's
    # JSON 404, not the site's HTML page.
    re_path(r"^.*$", views.no_such_route, name="no-such-route"),
]
