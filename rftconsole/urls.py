from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from jobs import api as jobs_api
from jobs.datasets import api as datasets_api
from jobs.datasets.urls import datasets_patterns
from jobs.registry import api as registry_api
from jobs.registry.urls import models_patterns
from jobs.urls import jobs_patterns
from playground import api as playground_api
from playground import evaluation_api
from playground.urls import deployments_patterns, playground_patterns
from playground.v1.urls import openai_patterns
from rewards import api as rewards_api
from rewards.urls import rewards_patterns
from rftconsole import api, views
from rftconsole.security.sign_in import serialized

router = DefaultRouter()
router.register("keys", api.ApiKeyViewSet, basename="apikey")
router.register("models", registry_api.ModelEntryViewSet, basename="model")
router.register("jobs", jobs_api.JobViewSet, basename="job")
router.register("datasets", datasets_api.DatasetViewSet, basename="dataset")
router.register("invocation-logs", playground_api.InvocationLogViewSet, basename="invocation-log")
router.register("rewards", rewards_api.RewardViewSet, basename="reward")
router.register("reward-tests", rewards_api.RewardTestViewSet, basename="reward-test")
router.register("evaluations", evaluation_api.EvaluationViewSet, basename="evaluation")

keys_patterns = (
    [
        path("", views.api_keys, name="list"),
        path("<int:key_id>/revoke/", views.revoke_key, name="revoke"),
    ],
    "keys",
)

urlpatterns = [
    path("", views.home, name="home"),
    # Browsers ask for /favicon.ico whatever the page's <link rel=icon> says; no sign-in needed.
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    ),
    path("system/", views.system_panel, name="system-panel"),
    path("keys/", include(keys_patterns)),
    path("models/", include(models_patterns)),
    path("datasets/", include(datasets_patterns)),
    path("jobs/", include(jobs_patterns)),
    path("rewards/", include(rewards_patterns)),
    path("deployments/", include(deployments_patterns)),
    path("playground/", include(playground_patterns)),
    # OpenAI-compatible endpoint: API keys only, JSON errors (see playground/v1/views.py).
    path("v1/", include(openai_patterns)),
    # Sign-ins one at a time per account and address (rftconsole/security/sign_in.py), the
    # admin's too.
    path(
        "login/",
        serialized(auth_views.LoginView.as_view(redirect_authenticated_user=True)),
        name="login",
    ),
    path("admin/login/", serialized(admin.site.login)),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/me/", api.me, name="api-me"),
    path("api/system/", api.system, name="api-system"),
    # Before the router: its datasets/<pk>/ pattern would take "from-logs" for a dataset id.
    path(
        "api/datasets/from-logs/",
        playground_api.dataset_from_logs_view,
        name="api-dataset-from-logs",
    ),
    path("api/reward-templates/", rewards_api.reward_templates, name="api-reward-templates"),
    path(
        "api/reward-templates/<slug:slug>/",
        rewards_api.reward_template,
        name="api-reward-template",
    ),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
