"""Accounts' REST routes, mounted under /api/v1/ in the `api` namespace."""

from django.urls import path

from accounts import api

urlpatterns = [
    path("accounts/", api.AccountListApi.as_view(), name="account-list"),
    path("accounts/<int:pk>", api.AccountDetailApi.as_view(), name="account-detail"),
    path("contacts/", api.ContactListApi.as_view(), name="contact-list"),
    path("contacts/<int:pk>", api.ContactDetailApi.as_view(), name="contact-detail"),
    path("contacts/<int:pk>/export", api.ContactExportApi.as_view(), name="contact-export"),
    path("support-tickets/", api.TicketListApi.as_view(), name="ticket-list"),
    path("support-tickets/<int:pk>", api.TicketDetailApi.as_view(), name="ticket-detail"),
    path("usage/", api.UsageListApi.as_view(), name="usage-list"),
    path("usage/<int:pk>", api.UsageDetailApi.as_view(), name="usage-detail"),
    path("segments/", api.SegmentListApi.as_view(), name="segment-list"),
]
