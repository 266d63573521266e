"""Respondent pages: no sign-in. A signed token (/r/, /u/) or a survey's public id (/s/) names
the tenant, and each view enters that tenant's scope itself: the signed-in member's
organization, if any, plays no part.

They work without JavaScript and without cookies, so the POSTs are exempt from CSRF: the
signed token in the URL is the credential (a forged request cannot carry a token it does
not know), and RFC 8058 one-click unsubscribe is a cookie-less POST from the mail client.
Answers go through responses.services.response_record, the one way a response is made.
"""

import secrets

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import get_language_from_request
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_scopes import scope, scopes_disabled

from accounts import cleaning
from accounts.models import SuppressionReason
from responses.classification import classify
from responses.models import Response
from responses.services import MAX_COMMENT, response_record
from surveys import tokens, tracking
from surveys.emails import brand_colors
from surveys.models import Invitation, Survey
from surveys.texts import first_name_of, pick_language, survey_texts, ui_strings

SCORES = range(11)
SHARE_ANSWER_SALT = "surveys.share-answer"
SHARE_ANSWER_MAX_AGE = 60 * 60 * 24  # the comment step of a link answer, in seconds
# Answers through a shareable link, per client address and survey.
SHARE_RATE_LIMIT = 10
SHARE_RATE_WINDOW = 10 * 60


# --- Rendering -----------------------------------------------------------------------------


def _page(request, template, *, survey=None, words=None, status=200, **context):
    brand, on_brand = brand_colors(survey.brand_color if survey else None)
    context.update(
        t=words or ui_strings(_request_language(request)),
        brand=brand,
        on_brand=on_brand,
        logo_url=survey.logo_url if survey else "",
        scores=SCORES,
    )
    response = render(request, f"surveys/public/{template}", context, status=status)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _request_language(request) -> str:
    return pick_language(get_language_from_request(request))


def _error(request, kind: str, status: int, *, survey=None, words=None, detail: str = ""):
    """A friendly page in the respondent's language. `kind` names an error_* string."""
    if words is None:
        language = _request_language(request)
        words = {**ui_strings(language), "lang": language}
    if survey is None:
        words = {**words, "org": ""}
    return _page(
        request,
        "error.html",
        survey=survey,
        words=words,
        status=status,
        message=words[f"error_{kind}"],
        detail=detail,
    )


def _token_error(request, exc: tokens.TokenInvalid):
    """Tampered or foreign → 400; expired → 400; an invitation that is gone → 404."""
    cause = exc.__cause__
    if isinstance(cause, signing.SignatureExpired):
        return _error(request, "expired", 400)
    if isinstance(cause, signing.BadSignature):
        return _error(request, "invalid", 400)
    return _error(request, "gone", 404)


def _parse_score(raw) -> int | None:
    """0–10 from a form or query value, else None."""
    if raw is None:
        return None
    raw = str(raw).strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 2:
        return None
    score = int(raw)
    return score if score in SCORES else None


def _group(score: int) -> str:
    return classify(score)[0]


def _words(survey, organization, contact=None) -> dict:
    return survey_texts(
        survey,
        contact.locale if contact else "",
        organization,
        first_name=first_name_of(contact.name) if contact else "",
    )


def _validation_detail(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return " ".join(m for messages in exc.message_dict.values() for m in messages)
    return " ".join(exc.messages)


# --- /r/<token>/: the response page --------------------------------------------------------


def _invitation_for(token) -> Invitation:
    invitation = tokens.invitation_from_token(token)
    if invitation.contact_id is None:  # the person was erased since
        raise tokens.TokenInvalid("This survey is no longer available.")
    return invitation


@csrf_exempt  # token-authenticated and cookie-less: see the module docstring
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def respond(request, token):
    try:
        invitation = _invitation_for(token)
    except tokens.TokenInvalid as exc:
        return _token_error(request, exc)
    organization, survey, contact = invitation.organization, invitation.survey, invitation.contact
    with scope(organization=organization):
        words = _words(survey, organization, contact)
        page = {"survey": survey, "words": words, "action": request.path}

        if request.method == "POST":
            raw = request.POST.get("score")
            score = _parse_score(raw)
            if raw not in (None, "") and score is None:
                return _error(request, "bad_score", 400, survey=survey, words=words)
            comment = request.POST.get("comment")
            current = _invitation_response(invitation)
            if score is None:
                if current is None:
                    return _error(request, "bad_score", 400, survey=survey, words=words)
                score = current.score
            try:
                _record(invitation, score=score, comment=comment)
            except ValidationError as exc:
                return _error(
                    request,
                    "not_saved",
                    400,
                    survey=survey,
                    words=words,
                    detail=_validation_detail(exc),
                )
            done = comment is not None
            return HttpResponseRedirect(request.path + ("?thanks=1" if done else ""), status=303)

        if request.method == "HEAD":
            # Link checkers and mail scanners probe with HEAD: that is not an answer.
            return _page(request, "respond.html", **page)
        raw = request.GET.get("score")
        if raw is not None:
            # The email's one-click link: the click is the answer.
            score = _parse_score(raw)
            if score is None:
                return _error(request, "bad_score", 400, survey=survey, words=words)
            try:
                response = _record(invitation, score=score)
            except ValidationError as exc:
                return _error(
                    request,
                    "not_saved",
                    400,
                    survey=survey,
                    words=words,
                    detail=_validation_detail(exc),
                )
            return _comment_page(request, page, response)

        current = _invitation_response(invitation)
        if current is None:
            tracking.invitation_mark_opened(invitation=invitation)
            return _page(request, "respond.html", **page)
        if request.GET.get("thanks"):
            return _page(
                request, "thanks.html", **page, thanks=words["thanks"][_group(current.score)]
            )
        return _comment_page(request, page, current)


def _invitation_response(invitation: Invitation) -> Response | None:
    return (
        Response.objects.filter(organization=invitation.organization, invitation_id=invitation.pk)
        .only("id", "score", "comment")
        .first()
    )


def _record(invitation: Invitation, *, score: int, comment: str | None = None) -> Response:
    fields = {
        "invitation_id": invitation.pk,
        "survey_id": invitation.survey_id,
        "contact_id": invitation.contact_id,
        "score": score,
    }
    if comment is not None:
        fields["comment"] = comment[:MAX_COMMENT]
    channel = invitation.channel if invitation.channel in {"email", "link"} else "email"
    with transaction.atomic():
        response, _ = response_record(
            organization=invitation.organization, channel=channel, **fields
        )
        tracking.invitation_mark_answered(invitation=invitation, response_id=response.pk)
    return response


def _comment_page(request, page: dict, response: Response, **extra):
    words = page["words"]
    return _page(
        request,
        "comment.html",
        **page,
        current=response.score,
        comment=response.comment,
        prompt=words["prompts"][_group(response.score)],
        max_comment=MAX_COMMENT,
        **extra,
    )


# --- /u/<token>/: unsubscribe --------------------------------------------------------------


@csrf_exempt  # RFC 8058 one-click: the mail client POSTs without cookies; the token suffices
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    try:
        invitation = tokens.invitation_from_token(
            token, salt=tokens.UNSUBSCRIBE_SALT, max_age=tokens.UNSUBSCRIBE_MAX_AGE
        )
        if invitation.contact_id is None:
            raise tokens.TokenInvalid("This survey is no longer available.")
    except tokens.TokenInvalid as exc:
        return _token_error(request, exc)
    organization, survey, contact = invitation.organization, invitation.survey, invitation.contact
    with scope(organization=organization):
        words = _words(survey, organization, contact)
        if request.method == "POST":
            with transaction.atomic():
                tracking.contact_suppress(
                    organization=organization,
                    contact=contact,
                    reason=SuppressionReason.UNSUBSCRIBED,
                    note=f"Unsubscribed from the link in invitation {invitation.pk}.",
                )
            return _page(request, "unsubscribe.html", survey=survey, words=words, done=True)
        return _page(
            request,
            "unsubscribe.html",
            survey=survey,
            words=words,
            done=contact.is_suppressed,
            action=request.path,
        )


# --- /s/<public_id>/: the shareable link ---------------------------------------------------


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or with PROXY_COUNT proxies in front, the address
    the outermost trusted proxy saw (X-Forwarded-For, counted from the right)."""
    proxies = getattr(settings, "AXES_IPWARE_PROXY_COUNT", None) or 0
    forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [p for p in forwarded if p]
    if proxies and len(forwarded) >= proxies:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _rate_limited(survey: Survey, ip: str) -> bool:
    """Counts this answer; True once the address is over the limit for the window."""
    key = f"surveys:share-rate:{survey.public_id}:{ip}"
    cache.add(key, 0, SHARE_RATE_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, SHARE_RATE_WINDOW)
        count = 1
    return count > SHARE_RATE_LIMIT


def _share_survey(public_id: str) -> Survey | None:
    # The public id is the only thing the URL holds and it is unique across tenants, so the
    # lookup runs before any scope; the view then enters the survey's organization.
    with scopes_disabled():
        return (
            Survey.objects.select_related("organization")
            .filter(public_id=public_id, is_active=True)
            .first()
        )


def _answer_token(survey: Survey, response: Response) -> str:
    return signing.dumps(
        {"o": survey.organization_id, "s": survey.pk, "x": response.external_id},
        salt=SHARE_ANSWER_SALT,
    )


def _answer_from(token: str, survey: Survey) -> dict:
    data = signing.loads(token, salt=SHARE_ANSWER_SALT, max_age=SHARE_ANSWER_MAX_AGE)
    if (
        not isinstance(data, dict)
        or data.get("s") != survey.pk
        or data.get("o") != survey.organization_id
    ):
        raise signing.BadSignature("The answer belongs to another survey.")
    return data


@csrf_exempt  # cookie-less public form; a forged POST could only add an answer anyone can add
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def share_link(request, public_id):
    survey = _share_survey(public_id)
    if survey is None:
        return _error(request, "gone", 404)
    organization = survey.organization
    with scope(organization=organization):
        words = survey_texts(survey, _request_language(request), organization)
        page = {"survey": survey, "words": words, "action": request.path}
        answer_token = request.POST.get("answer") or request.GET.get("answer")
        if answer_token:
            return _share_comment_step(request, page, answer_token)

        if request.method == "GET":
            return _page(
                request,
                "share.html",
                **page,
                email=request.GET.get("email", "")[:254],
                current=_parse_score(request.GET.get("score")),
            )

        email_raw = request.POST.get("email", "").strip()
        score = _parse_score(request.POST.get("score"))
        if score is None:
            return _page(
                request,
                "share.html",
                **page,
                email=email_raw[:254],
                status=400,
                error=words["error_bad_score"],
            )
        email = ""
        if email_raw:
            try:
                email = cleaning.email(email_raw)
            except ValueError:
                return _page(
                    request,
                    "share.html",
                    **page,
                    email=email_raw[:254],
                    current=score,
                    status=400,
                    error=words["error_bad_email"],
                )
        if _rate_limited(survey, client_ip(request)):
            return _error(request, "rate_limited", 429, survey=survey, words=words)
        fields = {
            "score": score,
            "survey_id": survey.pk,
            "external_id": f"link-{secrets.token_urlsafe(12)}",
        }
        if email:
            fields["email"] = email
        else:
            # No one to name: a contact of its own, created by the accounts upsert.
            fields["contact_external_id"] = f"anon-{secrets.token_urlsafe(12)}"
        try:
            response, _ = response_record(
                organization=organization, channel="link", create_missing=True, **fields
            )
        except ValidationError as exc:
            return _page(
                request,
                "share.html",
                **page,
                email=email_raw[:254],
                current=score,
                status=400,
                error=_validation_detail(exc),
            )
        query = urlencode({"answer": _answer_token(survey, response)})
        return HttpResponseRedirect(f"{request.path}?{query}", status=303)


def _share_comment_step(request, page: dict, answer_token: str):
    survey, words = page["survey"], page["words"]
    try:
        answer = _answer_from(answer_token, survey)
    except signing.SignatureExpired:
        return _error(request, "expired", 400, survey=survey, words=words)
    except signing.BadSignature:
        return _error(request, "invalid", 400, survey=survey, words=words)
    response = (
        Response.objects.filter(organization=survey.organization, external_id=answer["x"])
        .only("id", "score", "comment", "contact_id")
        .first()
    )
    if response is None:
        return _error(request, "gone", 404, survey=survey, words=words)
    page = {**page, "answer": answer_token}
    if request.method == "POST":
        raw = request.POST.get("score")
        score = _parse_score(raw) if raw not in (None, "") else response.score
        if score is None:
            return _error(request, "bad_score", 400, survey=survey, words=words)
        fields = {
            "score": score,
            "external_id": answer["x"],
            "contact_id": response.contact_id,
            "survey_id": survey.pk,
        }
        comment = request.POST.get("comment")
        if comment is not None:
            fields["comment"] = comment[:MAX_COMMENT]
        try:
            response_record(organization=survey.organization, channel="link", **fields)
        except ValidationError as exc:
            return _error(
                request,
                "not_saved",
                400,
                survey=survey,
                words=words,
                detail=_validation_detail(exc),
            )
        query = {"answer": answer_token}
        if comment is not None:
            query["thanks"] = "1"
        return HttpResponseRedirect(f"{request.path}?{urlencode(query)}", status=303)
    if request.GET.get("thanks"):
        return _page(request, "thanks.html", **page, thanks=words["thanks"][_group(response.score)])
    return _comment_page(request, page, response)


def share_url(survey: Survey) -> str:
    """The absolute shareable link of a survey, for the admin pages."""
    return settings.SITE_URL.rstrip("/") + reverse("public:share", args=[survey.public_id])
