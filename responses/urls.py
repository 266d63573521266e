from django.urls import path

from responses import views

app_name = "responses"
urlpatterns = [
    path("", views.explorer, name="explorer"),
]
