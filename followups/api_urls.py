"""Follow-ups' REST routes, mounted under /api/v1/ in the `api` namespace."""

from django.urls import path

from followups import api

urlpatterns = [
    path("followups/", api.FollowUpListApi.as_view(), name="followup-list"),
    path("followups/<int:pk>", api.FollowUpDetailApi.as_view(), name="followup-detail"),
]
