"""Pages for respondents: no sign-in; the signed token or public id names the tenant."""

from django.urls import path

from surveys import in_app, public_views

app_name = "public"
urlpatterns = [
    path("r/<str:token>/", public_views.respond, name="respond"),
    path("u/<str:token>/", public_views.unsubscribe, name="unsubscribe"),
    path("s/<str:public_id>/", public_views.share_link, name="share"),
    path("in-app/v1/config", in_app.config, name="in_app_config"),
    path("in-app/v1/answer", in_app.answer, name="in_app_answer"),
    path("in-app/v1/dismiss", in_app.dismiss, name="in_app_dismiss"),
]
