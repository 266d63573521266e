from django.urls import path

from surveys import views

app_name = "surveys"
urlpatterns = [
    path("", views.survey_list, name="list"),
    path("new/", views.survey_create, name="survey_create"),
    path("<int:survey_id>/", views.survey_edit, name="survey_edit"),
    path("<int:survey_id>/preview", views.survey_preview, name="survey_preview"),
    path("programmes/new/", views.programme_create, name="programme_create"),
    path("programmes/<int:programme_id>/", views.programme_edit, name="programme_edit"),
    path("log/", views.send_log, name="send_log"),
    path("settings/", views.survey_settings, name="settings"),
    path("in-app/", views.in_app_install, name="in_app_install"),
]
