from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from brenia.api import api
from brenia.health import healthz, readyz
from brenia.metrics import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("brenia.accounts.urls")),
    path("", include("brenia.billing.urls")),
    path("", include("templates_app.web.urls")),
    path("", include("generation.web.urls")),
]
