"""/delighted/v1/: every path with or without ".json", never redirected for a slash."""

from django.urls import re_path

from compat import api

app_name = "delighted"

J = r"(?:\.json)?/?$"

urlpatterns = [
    re_path(r"^people" + J, api.PeopleApi.as_view(), name="people"),
    re_path(
        r"^people/(?P<person>[^/]+)/survey_requests/pending" + J,
        api.PendingSurveyRequestsApi.as_view(),
        name="pending_survey_requests",
    ),
    re_path(r"^people/(?P<person>[^/]+?)" + J, api.PersonApi.as_view(), name="person"),
    re_path(r"^survey_responses" + J, api.SurveyResponsesApi.as_view(), name="survey_responses"),
    re_path(
        r"^survey_responses/(?P<response_id>[^/]+?)" + J,
        api.SurveyResponseApi.as_view(),
        name="survey_response",
    ),
    re_path(r"^metrics" + J, api.MetricsApi.as_view(), name="metrics"),
    re_path(r"^unsubscribes" + J, api.UnsubscribesApi.as_view(), name="unsubscribes"),
    re_path(r"^bounces" + J, api.BouncesApi.as_view(), name="bounces"),
    re_path(r"^autopilot/email" + J, api.AutopilotApi.as_view(), name="autopilot"),
    re_path(
        r"^autopilot/email/memberships" + J,
        api.AutopilotMembershipsApi.as_view(),
        name="autopilot_memberships",
    ),
    re_path(r"^(?P<rest>.*)$", api.not_found, name="not_found"),
]
