from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from webapp import health
from webapp.signin import SignInForm

urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page says.
    path(
        "favicon.ico",
        RedirectView.as_view(url=static("favicon.svg"), permanent=True),
        name="favicon",
    ),
    path("healthz", health.healthz, name="healthz"),
    path("healthz/workers", health.healthz_workers, name="healthz-workers"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=SignInForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("webapp.api.urls")),
    path("", include("webapp.pages.urls")),
]
