"""Admin settings for responses, mounted under /settings/ as `response_settings`."""

from django.urls import path

from responses import settings_views, views

app_name = "response_settings"
urlpatterns = [
    path("webhooks/", settings_views.webhook_list, name="webhooks"),
    path("webhooks/<int:endpoint_id>/", settings_views.webhook_detail, name="webhook_detail"),
    path(
        "webhooks/<int:endpoint_id>/delete",
        settings_views.webhook_delete,
        name="webhook_delete",
    ),
    path(
        "webhooks/deliveries/<int:delivery_id>/redeliver",
        settings_views.delivery_redeliver,
        name="delivery_redeliver",
    ),
    path("slack/", settings_views.slack_settings, name="slack"),
    path("themes/", views.theme_list, name="themes"),
    path("themes/<int:theme_id>/delete", views.theme_delete, name="theme_delete"),
]
