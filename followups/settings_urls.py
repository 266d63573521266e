"""Admin settings for follow-ups, mounted under /settings/ as `followup_settings`."""

from django.urls import path

from followups import views

app_name = "followup_settings"
urlpatterns = [
    path("playbooks/", views.playbook_settings, name="playbooks"),
    path("playbooks/preview", views.playbook_preview, name="preview"),
    path("playbooks/template", views.playbook_template_save, name="template_save"),
    path("playbooks/rules", views.assignment_rule_add, name="rule_add"),
    path("playbooks/rules/<int:rule_id>/delete", views.assignment_rule_delete, name="rule_delete"),
    path("playbooks/pauses", views.member_pause_add, name="pause_add"),
    path("playbooks/pauses/<int:pause_id>/resume", views.member_pause_resume, name="pause_resume"),
    path("playbooks/options", views.followup_options_save, name="options"),
]
