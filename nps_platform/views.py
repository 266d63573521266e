"""Pages of the platform itself: home, organization switcher, settings, invitations, health."""

import redis
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from nps_platform import selectors, services
from nps_platform.access import member_required
from nps_platform.api_errors import error_body, json_not_found, json_server_error
from nps_platform.forms import AcceptInvitationForm, ApiKeyForm, InviteForm, OrganizationForm
from nps_platform.middleware import SESSION_ORGANIZATION_KEY
from nps_platform.models import Role, User
from nps_platform.roles import HOME_AREA, NAVIGATION


def _validation_message(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    if request.membership is None:
        return redirect("no_organization")
    area = HOME_AREA[request.membership.role]
    url_name = next(url_name for a, _, url_name in NAVIGATION if a == area)
    return redirect(url_name)


@login_required
def no_organization(request):
    if request.membership is not None:
        return redirect("home")
    return render(request, "nps_platform/no_organization.html")


@require_POST
@login_required
def organization_switch(request):
    slug = request.POST.get("organization", "")
    membership = next((m for m in request.memberships if m.organization.slug == slug), None)
    if membership is None:
        raise Http404("No such organization.")
    request.session[SESSION_ORGANIZATION_KEY] = membership.organization_id
    messages.success(request, f"Switched to {membership.organization.name}.")
    return redirect("home")


# --- Settings ----------------------------------------------------------------------------


@member_required("settings")
def settings_organization(request):
    organization = request.organization
    form = OrganizationForm(
        request.POST or None,
        initial={
            "name": organization.name,
            "timezone": organization.timezone,
            "currency": organization.currency,
        },
    )
    if request.method == "POST" and form.is_valid():
        services.organization_update(
            organization=organization,
            name=form.cleaned_data["name"],
            timezone_name=form.cleaned_data["timezone"],
            currency=form.cleaned_data["currency"],
        )
        messages.success(request, "Organization settings saved.")
        return redirect("settings:organization")
    return render(
        request, "nps_platform/settings_organization.html", {"form": form, "tab": "organization"}
    )


@member_required("settings")
def settings_team(request):
    organization = request.organization
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invitation = services.invitation_create(
                organization=organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
            )
        except ValidationError as exc:
            form.add_error("email", _validation_message(exc))
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("settings:team")
    context = {
        "form": form,
        "tab": "team",
        "members": selectors.members_of(organization),
        "invitations": selectors.pending_invitations_of(organization),
        "roles": Role.choices,
    }
    return render(request, "nps_platform/settings_team.html", context)


@require_POST
@member_required("settings")
def settings_member_role(request, membership_id: int):
    membership = selectors.get_membership_for(request.organization, membership_id)
    try:
        services.membership_change_role(
            organization=request.organization,
            membership=membership,
            role=request.POST.get("role", ""),
        )
    except ValidationError as exc:
        messages.error(request, _validation_message(exc))
    else:
        messages.success(
            request, f"{membership.user.email} is now {membership.get_role_display()}."
        )
    return redirect("settings:team")


@require_POST
@member_required("settings")
def settings_member_remove(request, membership_id: int):
    membership = selectors.get_membership_for(request.organization, membership_id)
    try:
        services.membership_remove(organization=request.organization, membership=membership)
    except ValidationError as exc:
        messages.error(request, _validation_message(exc))
    else:
        messages.success(request, f"{membership.user.email} was removed.")
    return redirect("settings:team")


@require_POST
@member_required("settings")
def settings_invitation_revoke(request, invitation_id: int):
    invitation = selectors.get_invitation_for(request.organization, invitation_id)
    services.invitation_revoke(organization=request.organization, invitation=invitation)
    messages.success(request, f"The invitation for {invitation.email} was withdrawn.")
    return redirect("settings:team")


@member_required("settings")
def settings_api_keys(request):
    organization = request.organization
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        new_key = services.api_key_create(
            organization=organization, name=form.cleaned_data["name"], created_by=request.user
        )
        form = ApiKeyForm()
    context = {
        "form": form,
        "tab": "api_keys",
        "new_key": new_key,
        "api_keys": selectors.api_keys_of(organization),
        "docs_url": reverse("api:docs"),
    }
    response = render(request, "nps_platform/settings_api_keys.html", context)
    if new_key:
        # The full key is on this page only: never let a browser or proxy keep it.
        response["Cache-Control"] = "no-store"
    return response


@require_POST
@member_required("settings")
def settings_api_key_revoke(request, api_key_id: int):
    api_key = selectors.get_api_key_for(request.organization, api_key_id)
    services.api_key_revoke(organization=request.organization, api_key=api_key)
    messages.success(request, f"The key “{api_key.name}” was revoked; it no longer works.")
    return redirect("settings:api_keys")


# --- Invitations ------------------------------------------------------------------------


@never_cache
def invitation_accept(request, token: str):
    try:
        invitation = services.invitation_from_token(token=token)
    except services.InvitationInvalid as exc:
        return render(
            request, "nps_platform/invitation_invalid.html", {"reason": str(exc)}, status=410
        )

    existing_user = User.objects.filter(email__iexact=invitation.email).first()
    signed_in_as_invitee = (
        request.user.is_authenticated and request.user.email.lower() == invitation.email.lower()
    )
    form = AcceptInvitationForm(request.POST or None) if existing_user is None else None
    error = None

    if request.method == "POST":
        try:
            if existing_user is not None:
                if not signed_in_as_invitee:
                    return redirect(f"{reverse('login')}?next={request.path}")
                membership = services.invitation_accept(invitation=invitation, user=request.user)
            elif form.is_valid():
                membership = services.invitation_accept(
                    invitation=invitation,
                    name=form.cleaned_data["name"],
                    password=form.cleaned_data["password"],
                )
                login(request, membership.user, backend=settings.AUTHENTICATION_BACKENDS[-1])
            else:
                membership = None
        except ValidationError as exc:
            if form is not None and hasattr(exc, "error_dict"):
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                error = _validation_message(exc)
            membership = None
        if membership is not None:
            request.session[SESSION_ORGANIZATION_KEY] = membership.organization_id
            messages.success(request, f"Welcome to {membership.organization.name}.")
            return redirect("home")

    context = {
        "invitation": invitation,
        "form": form,
        "existing_user": existing_user,
        "signed_in_as_invitee": signed_in_as_invitee,
        "error": error,
    }
    return render(request, "nps_platform/invitation_accept.html", context)


# --- Health -----------------------------------------------------------------------------


@require_GET
@never_cache
def healthz(request):
    """200 when every configured backing service answers, else 503 naming what is down."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        checks["database"] = f"down: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"down: {exc.__class__.__name__}"
    else:
        checks["redis"] = "not configured"
    down = [name for name, state in checks.items() if state.startswith("down")]
    return JsonResponse(
        {"status": "down" if down else "ok", "down": down, "checks": checks},
        status=503 if down else 200,
    )


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return render(request, "errors/404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return render(request, "errors/500.html", status=500)


def permission_denied(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("permission_denied", str(exception)), status=403)
    return render(request, "errors/403.html", status=403)
