"""The in-app widget's endpoints (static/js/nps-widget.js calls them from a customer's product).

Identity verification: the customer's backend signs the signed-in user's email with the
organization's identity secret, `hex(HMAC-SHA256(identity_secret, email))`, over the email
exactly as the widget passes it. The widget sends the publishable key (which names the
organization), the email and that signature; without the secret nobody can produce it, so
nobody can answer as someone else.

- GET  /in-app/v1/config  → whether the user is due, the texts, and a short-lived token;
- POST /in-app/v1/answer  {token, score, comment?} → the answer, through response_record;
- POST /in-app/v1/dismiss {token} → a dismissal, which counts toward fatigue.

The token (signed, 2 hours) names the organization, contact and programme plus a nonce: the
nonce is kept as the invitation's message_id ("in-app:<nonce>"), so answering again with the
same token updates the same invitation and response, and a dismissal is recorded once.

Asking and dismissing are both recorded as an invitation of channel in_app with sent_at
(when it was shown) and contact.last_surveyed_at = now: exactly the facts the one
eligibility rule (surveys.eligibility) reads for fatigue (last_surveyed_at) and for the
programme's own cycle (its invitations' sent_at). A dismissed one is `skipped` with a note
in last_error rather than `sent`, so the reminder run (which emails unanswered sent ones)
never picks it up.

All answers are JSON with `Access-Control-Allow-Origin: *` (the widget runs on the
customer's origin), no cookies are read or set, and the views are exempt from CSRF: the
requests come cross-origin without cookies, and the credential is the HMAC signature or the
signed token in the body, which a forged request cannot know.
"""

import hashlib
import hmac
import json
import secrets

from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.utils.timezone import now
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django_scopes import scope, scopes_disabled

from accounts.models import Contact
from nps_platform.params import whole_number
from responses.classification import classify
from responses.services import MAX_COMMENT, response_record
from surveys import eligibility, tracking
from surveys.events import invitations_changed_on_commit
from surveys.models import Invitation, InvitationState, Programme, SurveySettings
from surveys.public_views import client_ip
from surveys.texts import first_name_of, survey_texts

TOKEN_SALT = "surveys.in-app"
TOKEN_MAX_AGE = 2 * 60 * 60  # seconds: a page view, with room to spare
RATE_LIMIT = 60  # requests per key (or organization) and client address …
RATE_WINDOW = 60  # … per this many seconds
DISMISSED_NOTE = "Dismissed in the app by the contact."
UI_KEYS = ("scale_low", "scale_high", "scale_hint", "comment_label", "send", "thanks_heading")
MAX_BODY = 64 * 1024


# --- Plumbing ------------------------------------------------------------------------------


def _cors(response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type"
    response["Access-Control-Max-Age"] = "600"
    response["Cache-Control"] = "no-store"
    return response


def _json(data: dict, status: int = 200) -> JsonResponse:
    return _cors(JsonResponse(data, status=status))


def _error(code: str, message: str, status: int) -> JsonResponse:
    return _json({"error": code, "message": message}, status)


def _rate_limited(ident: str, request) -> bool:
    key = (
        "surveys:in-app-rate:"
        + hashlib.sha256(f"{ident}|{client_ip(request)}".encode()).hexdigest()
    )
    cache.add(key, 0, RATE_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, RATE_WINDOW)
        count = 1
    return count > RATE_LIMIT


def _endpoint(methods: set[str]):
    """CORS preflight, method check and JSON errors for every endpoint."""

    def wrap(view):
        # Cross-origin and cookie-less, authenticated by HMAC signature or signed token
        # (see the module docstring): there is no session for CSRF to protect.
        @csrf_exempt
        @never_cache
        def inner(request):
            if request.method == "OPTIONS":
                return _cors(HttpResponse(status=204))
            if request.method not in methods:
                response = _error("method_not_allowed", f"Use {' or '.join(sorted(methods))}.", 405)
                response["Allow"] = ", ".join(sorted(methods | {"OPTIONS"}))
                return response
            return view(request)

        inner.__name__ = view.__name__
        inner.__doc__ = view.__doc__
        return inner

    return wrap


def _body(request) -> dict | None:
    if len(request.body) > MAX_BODY:
        return None
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def signature_for(identity_secret: str, email: str) -> str:
    """What the customer's backend computes (shown on the install page, used by tests)."""
    return hmac.new(identity_secret.encode(), email.encode(), hashlib.sha256).hexdigest()


def _token(organization_id: int, contact_id: int, programme_id: int) -> str:
    return signing.dumps(
        {"o": organization_id, "c": contact_id, "p": programme_id, "n": secrets.token_hex(8)},
        salt=TOKEN_SALT,
    )


def _from_token(raw) -> dict | None:
    if not isinstance(raw, str) or not raw or len(raw) > 500:
        return None
    try:
        data = signing.loads(raw, salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:  # also SignatureExpired
        return None
    if not isinstance(data, dict) or not {"o", "c", "p", "n"} <= data.keys():
        return None
    return data


# --- GET /in-app/v1/config -----------------------------------------------------------------


def due_programme(organization, contact) -> Programme | None:
    """The first active in-app programme the one eligibility rule lets ask the contact now."""
    at = now()
    programmes = Programme.objects.filter(
        organization=organization, is_active=True, channel_in_app=True, survey__is_active=True
    ).select_related("survey", "segment")
    for programme in programmes.order_by("pk"):
        reason = eligibility.contact_skip_reason(
            organization=organization, programme=programme, contact=contact, at=at
        )
        if reason is None:
            return programme
    return None


@_endpoint({"GET", "HEAD"})
def config(request):
    key = request.GET.get("key", "").strip()
    email = request.GET.get("email", "").strip()
    signature = request.GET.get("signature", "").strip().lower()
    if not key or not email or not signature:
        return _error("invalid", "Send key, email and signature.", 400)
    if "\x00" in key + email + signature or len(email) > 254:
        return _error("invalid", "The key, email or signature is not valid.", 400)
    if _rate_limited(f"k:{key[:60]}", request):
        return _error("rate_limited", "Too many requests; try again in a minute.", 429)
    # The publishable key is unique across tenants and is all the request holds: looked up
    # before any scope, then the view enters that organization's.
    with scopes_disabled():
        settings_row = (
            SurveySettings.objects.select_related("organization")
            .filter(publishable_key=key)
            .first()
        )
    if settings_row is None:
        return _error("unknown_key", "This publishable key is not known.", 403)
    expected = signature_for(settings_row.identity_secret, email)
    if not hmac.compare_digest(expected, signature):
        return _error(
            "bad_signature",
            "The signature does not match this email: sign it with the organization's "
            "identity secret (HMAC-SHA256, hex) on your server.",
            403,
        )
    organization = settings_row.organization
    with scope(organization=organization):
        contact = (
            Contact.objects.filter(organization=organization, email__iexact=email)
            .order_by("pk")
            .first()
        )
        if contact is None:
            return _error("unknown_contact", "No contact has this email.", 404)
        programme = due_programme(organization, contact)
        if programme is None:
            return _json({"due": False, "survey": None, "token": None})
        survey = programme.survey
        words = survey_texts(
            survey, contact.locale, organization, first_name=first_name_of(contact.name)
        )
    return _json(
        {
            "due": True,
            "survey": {
                "lang": words["lang"],
                "question": words["question"],
                "prompts": words["prompts"],
                "thanks": words["thanks"],
                "brand_color": survey.brand_color,
                "ui": {name: words[name] for name in UI_KEYS},
            },
            "token": _token(organization.pk, contact.pk, programme.pk),
        }
    )


# --- POST /in-app/v1/answer and /dismiss ---------------------------------------------------


def _context(request):
    """(data, token data, programme, contact) or an error response."""
    data = _body(request)
    if data is None:
        return _error("invalid", "Send a JSON object.", 400)
    claims = _from_token(data.get("token"))
    if claims is None:
        return _error(
            "bad_token", "The token is not valid or has expired; load the config again.", 403
        )
    if _rate_limited(f"o:{claims['o']}", request):
        return _error("rate_limited", "Too many requests; try again in a minute.", 429)
    with scopes_disabled():
        programme = (
            Programme.objects.select_related("survey", "organization")
            .filter(pk=claims["p"], organization_id=claims["o"])
            .first()
        )
        contact = Contact.objects.filter(pk=claims["c"], organization_id=claims["o"]).first()
    if programme is None or contact is None:
        return _error("not_found", "This survey is no longer available.", 404)
    return data, claims, programme, contact


def _ask(programme, contact, nonce: str, moment, **fields) -> Invitation:
    """The in-app invitation of this token: found by its nonce, else made (shown now)."""
    marker = f"in-app:{nonce}"
    invitation = Invitation.objects.filter(
        organization=programme.organization, message_id=marker
    ).first()
    if invitation is None:
        invitation = Invitation.objects.create(
            organization=programme.organization,
            programme=programme,
            survey_id=programme.survey_id,
            contact=contact,
            account_id=contact.account_id,
            channel="in_app",
            planned_for=moment,
            sent_at=moment,
            message_id=marker,
            **fields,
        )
        # A survey was put in front of the contact: fatigue counts it (the dispatcher does
        # the same after an email send).
        Contact.objects.filter(pk=contact.pk).update(last_surveyed_at=moment)
        invitations_changed_on_commit(invitation.organization_id, [invitation.pk])
    return invitation


def _score(raw) -> int | None:
    if isinstance(raw, bool):
        return None
    score = whole_number(raw)
    return score if score is not None and score <= 10 else None


@_endpoint({"POST"})
def answer(request):
    found = _context(request)
    if isinstance(found, HttpResponse):
        return found
    data, claims, programme, contact = found
    score = _score(data.get("score"))
    if score is None:
        return _error("invalid", "The score must be a whole number from 0 to 10.", 400)
    comment = data.get("comment")
    if comment is not None and not isinstance(comment, str):
        return _error("invalid", "The comment must be text.", 400)
    organization = programme.organization
    moment = now()
    with scope(organization=organization):
        try:
            with transaction.atomic():
                invitation = _ask(
                    programme,
                    contact,
                    claims["n"],
                    moment,
                    state=InvitationState.ANSWERED,
                    answered_at=moment,
                )
                fields = {
                    "contact_id": contact.pk,
                    "survey_id": programme.survey_id,
                    "invitation_id": invitation.pk,
                    "score": score,
                }
                if comment is not None:
                    fields["comment"] = comment.replace("\x00", "")[:MAX_COMMENT]
                response, _ = response_record(organization=organization, channel="in_app", **fields)
                tracking.invitation_mark_answered(
                    invitation=invitation, response_id=response.pk, moment=moment
                )
        except ValidationError as exc:
            messages = (
                [m for ms in exc.message_dict.values() for m in ms]
                if hasattr(exc, "error_dict")
                else exc.messages
            )
            return _error("invalid", " ".join(messages) or "The answer is not valid.", 400)
        words = survey_texts(programme.survey, contact.locale, organization)
    group = classify(score)[0]
    return _json({"thanks": words["thanks"][group], "response_id": response.pk})


@_endpoint({"POST"})
def dismiss(request):
    found = _context(request)
    if isinstance(found, HttpResponse):
        return found
    _, claims, programme, contact = found
    with scope(organization=programme.organization), transaction.atomic():
        _ask(
            programme,
            contact,
            claims["n"],
            now(),
            state=InvitationState.SKIPPED,
            last_error=DISMISSED_NOTE,
        )
    return _json({"dismissed": True})
