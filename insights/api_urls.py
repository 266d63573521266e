"""The metrics API's routes, mounted under /api/v1/ in the `api` namespace."""

from django.urls import path

from insights import api

urlpatterns = [
    path("metrics/nps", api.NpsMetricsApi.as_view(), name="metrics-nps"),
    path("metrics/dashboard", api.DashboardMetricsApi.as_view(), name="metrics-dashboard"),
]
