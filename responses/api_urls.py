"""Responses' REST routes, mounted under /api/v1/ in the `api` namespace."""

from django.urls import path

from responses import api

urlpatterns = [
    path("responses/", api.ResponseListApi.as_view(), name="response-list"),
    path("responses/bulk", api.ResponseBulkApi.as_view(), name="response-bulk"),
    path("responses/<int:pk>", api.ResponseDetailApi.as_view(), name="response-detail"),
]
