from django.urls import path

from accounts import import_views, views

app_name = "accounts"
urlpatterns = [
    path("", views.account_list, name="list"),
    path("<int:account_id>/", views.account_detail, name="detail"),
    path("segments/", views.segment_list, name="segments"),
    path("segments/new/", views.segment_create, name="segment_create"),
    path("segments/preview", views.segment_preview, name="segment_preview"),
    path("segments/<int:segment_id>/", views.segment_edit, name="segment_edit"),
    path("segments/<int:segment_id>/delete", views.segment_delete, name="segment_delete"),
    path("imports/", import_views.import_list, name="imports"),
    path("imports/<int:import_id>/", import_views.import_detail, name="import_detail"),
    path("imports/<int:import_id>/progress", import_views.import_progress, name="import_progress"),
    path("imports/<int:import_id>/errors.csv", import_views.import_errors, name="import_errors"),
]
