from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from webapp import health
from webapp.signin import SignInForm

urlpatterns = [
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
