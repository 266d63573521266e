from django.urls import path

from compat import views

app_name = "compat_settings"

urlpatterns = [
    path("delighted/", views.guide, name="guide"),
]
