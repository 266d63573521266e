"""Surveys' REST routes, mounted under /api/v1/ in the `api` namespace."""

from django.urls import path

from surveys import api

urlpatterns = [
    path("events/", api.EventApi.as_view(), name="event-create"),
    path("invitations/", api.InvitationListApi.as_view(), name="invitation-list"),
]
