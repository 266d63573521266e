"""Admin settings for follow-ups, mounted under /settings/ as `followup_settings`."""

from django.urls import path

from followups import views

app_name = "followup_settings"
urlpatterns = [
    path("playbooks/", views.playbook_settings, name="playbooks"),
]
