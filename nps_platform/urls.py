"""The root URLconf: the only place the platform names the domain apps."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from nps_platform import api, views
from nps_platform.forms import SignInForm

api_patterns = (
    [
        path("me", api.MeApi.as_view(), name="me"),
        path("schema/", SpectacularAPIView.as_view(), name="schema"),
        path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
        # The busiest first: URLs are matched in order, and most API calls record answers.
        path("", include("responses.api_urls")),
        path("", include("accounts.api_urls")),
        path("", include("surveys.api_urls")),
        path("", include("followups.api_urls")),
        path("", include("insights.api_urls")),
    ],
    "api",
)

settings_patterns = (
    [
        path("", views.settings_organization, name="organization"),
        path("team/", views.settings_team, name="team"),
        path("team/<int:membership_id>/role", views.settings_member_role, name="member_role"),
        path("team/<int:membership_id>/remove", views.settings_member_remove, name="member_remove"),
        path(
            "invitations/<int:invitation_id>/revoke",
            views.settings_invitation_revoke,
            name="invitation_revoke",
        ),
        path("api-keys/", views.settings_api_keys, name="api_keys"),
        path(
            "api-keys/<int:api_key_id>/revoke", views.settings_api_key_revoke, name="api_key_revoke"
        ),
    ],
    "settings",
)

auth_patterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            authentication_form=SignInForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password-change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "password-change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("password-reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    # The API first: integrations send most requests, and URLs are matched in order.
    path("api/v1/", include(api_patterns)),
    path("", views.home, name="home"),
    *auth_patterns,
    path("no-organization/", views.no_organization, name="no_organization"),
    path("organization/switch", views.organization_switch, name="organization_switch"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("healthz", views.healthz, name="healthz"),
    path("settings/", include(settings_patterns)),
    path("settings/", include("responses.settings_urls")),
    path("settings/", include("followups.settings_urls")),
    path("settings/", include("compat.settings_urls")),
    path("queue/", include("followups.urls")),
    path("dashboard/", include("insights.urls")),
    path("responses/", include("responses.urls")),
    path("accounts/", include("accounts.urls")),
    path("surveys/", include("surveys.urls")),
    # Delighted's REST API, for integrations moving over (compat/urls.py).
    path("delighted/v1/", include("compat.urls")),
    path("", include("surveys.public_urls")),
    # The ESP's tracking webhooks (bounces, complaints, opens), behind ANYMAIL_WEBHOOK_SECRET.
    path("anymail/", include(("anymail.urls", "anymail"))),
    path("admin/", admin.site.urls),
]

handler403 = "nps_platform.views.permission_denied"
handler404 = "nps_platform.views.page_not_found"
handler500 = "nps_platform.views.server_error"
