from django.urls import path

from followups import views

app_name = "followups"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("bulk-assign", views.queue_bulk_assign, name="bulk_assign"),
    path("<int:followup_id>/", views.followup_detail, name="detail"),
    path("<int:followup_id>/activity", views.followup_activity, name="activity"),
    path("<int:followup_id>/draft", views.followup_draft_save, name="draft_save"),
    path("<int:followup_id>/send", views.followup_send, name="send"),
    path("<int:followup_id>/log", views.followup_log, name="log"),
    path("<int:followup_id>/status", views.followup_status, name="status"),
    path("<int:followup_id>/assign", views.followup_assign, name="assign"),
    path("<int:followup_id>/close", views.followup_close, name="close"),
]
