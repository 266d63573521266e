from django.urls import path

from responses import views

app_name = "responses"
urlpatterns = [
    path("", views.explorer, name="explorer"),
    path("export.csv", views.explorer_export, name="export"),
    path("<int:response_id>/", views.response_detail, name="detail"),
]
