"""The survey email: text and HTML parts with the 0–10 scale as eleven signed one-click links,
a visible unsubscribe link, the sender's postal address, and RFC 8058 one-click unsubscribe
headers. Sent through whatever EMAIL_BACKEND is set (django-anymail in production)."""

import re
from email.headerregistry import Address
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django_scopes import scope

from surveys import tokens
from surveys.models import Invitation, Survey, SurveySettings
from surveys.texts import first_name_of, survey_texts

TAGS = ["nps-survey"]
DEFAULT_BRAND = "#4F46E5"
_HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")


def brand_colors(color: str | None) -> tuple[str, str]:
    """(the brand colour, a readable text colour on it). Anything but #rgb/#rrggbb falls
    back to the default: the value lands in inline styles."""
    color = (color or "").strip()
    if not _HEX_COLOR.fullmatch(color):
        color = DEFAULT_BRAND
    digits = color[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    red, green, blue = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))

    def linear(c):
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    # White text when it contrasts better than near-black does (WCAG contrast ratios).
    on_white = 1.05 / (luminance + 0.05)
    on_dark = (luminance + 0.05) / 0.0592  # #111827
    on_brand = "#ffffff" if on_white >= on_dark else "#111827"
    return color.upper(), on_brand


def site_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def respond_url(invitation: Invitation, score: int | None = None) -> str:
    url = site_url(reverse("public:respond", args=[tokens.invitation_token(invitation)]))
    return url if score is None else f"{url}?score={score}"


def unsubscribe_url(invitation: Invitation) -> str:
    token = tokens.invitation_token(invitation, salt=tokens.UNSUBSCRIBE_SALT)
    return site_url(reverse("public:unsubscribe", args=[token]))


def postal_address(organization_id: int) -> str:
    with scope(organization=organization_id):
        return (
            SurveySettings.objects.filter(organization_id=organization_id)
            .values_list("postal_address", flat=True)
            .first()
            or ""
        )


def _render(
    *,
    survey: Survey,
    organization,
    locale: str,
    first_name: str,
    score_url,
    unsubscribe: str,
    address: str,
    reminder: bool,
) -> tuple[str, str, str]:
    words = survey_texts(survey, locale, organization, first_name=first_name)
    subject = " ".join(words["email_subject"].split())  # one line, whatever the admin typed
    if reminder:
        subject = words["reminder_prefix"] + subject
    brand, on_brand = brand_colors(survey.brand_color)
    context = {
        "t": words,
        "subject": subject,
        "survey": survey,
        "brand": brand,
        "on_brand": on_brand,
        "logo_url": survey.logo_url,
        "scale": [{"score": n, "url": score_url(n)} for n in range(11)],
        "unsubscribe_url": unsubscribe,
        "postal_address": address,
    }
    text = render_to_string("surveys/email/invitation.txt", context)
    html = render_to_string("surveys/email/invitation.html", context)
    return subject, text, html


def render_invitation_email(
    invitation: Invitation, *, reminder: bool = False, unsubscribe: str | None = None
):
    """(subject, text, html) of the invitation email, in the contact's language."""
    contact = invitation.contact
    base = respond_url(invitation)  # one token for all eleven links
    return _render(
        survey=invitation.survey,
        organization=invitation.organization,
        locale=contact.locale if contact else "",
        first_name=first_name_of(contact.name if contact else ""),
        score_url=lambda n: f"{base}?score={n}",
        unsubscribe=unsubscribe or unsubscribe_url(invitation),
        address=postal_address(invitation.organization_id),
        reminder=reminder,
    )


def render_preview_email(survey: Survey, organization, locale: str = "en"):
    """(subject, text, html) as a made-up contact would get it, for the admin's preview.
    The links go nowhere: a preview must not record answers."""
    return _render(
        survey=survey,
        organization=organization,
        locale=locale,
        first_name="Alex",
        score_url=lambda n: f"#score-{n}",
        unsubscribe="#unsubscribe",
        address=postal_address(organization.pk),
        reminder=False,
    )


def sender_address(survey: Survey, organization) -> str:
    """ "Sender name <sender@…>" from the survey, else the platform's address with the
    survey's sender name (or the organization's name)."""
    default_name, default_email = parseaddr(settings.DEFAULT_FROM_EMAIL)
    email = survey.sender_email or default_email
    name = survey.sender_name or (organization.name if organization else "") or default_name
    name = " ".join(name.split())
    if not name:
        return email
    username, _, domain = email.rpartition("@")
    return str(Address(display_name=name, username=username, domain=domain))


def build_invitation_message(invitation: Invitation, *, reminder: bool = False):
    contact = invitation.contact
    if contact is None or not contact.email:
        raise ValueError(f"Invitation {invitation.pk} has no contact email to send to.")
    survey = invitation.survey
    unsubscribe = unsubscribe_url(invitation)  # the same URL in the header and the footer
    subject, text, html = render_invitation_email(
        invitation, reminder=reminder, unsubscribe=unsubscribe
    )
    reply_to = survey.reply_to or survey.sender_email
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=sender_address(survey, invitation.organization),
        to=[contact.email],
        reply_to=[reply_to] if reply_to else None,
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" to the URL above.
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    message.attach_alternative(html, "text/html")
    # Anymail's attributes; other backends ignore them. The tracking webhook finds the
    # invitation by these when the ESP's message id is not stored yet.
    message.metadata = {
        "organization_id": str(invitation.organization_id),
        "invitation_id": str(invitation.pk),
    }
    message.tags = [*TAGS, "nps-reminder"] if reminder else list(TAGS)
    message.track_opens = True
    return message


def invitation_send(*, invitation: Invitation, reminder: bool = False) -> str:
    """Sends the invitation email; returns the ESP's message id, or "" when the backend
    gives none. Errors propagate: the dispatcher decides about retries."""
    message = build_invitation_message(invitation, reminder=reminder)
    message.send()
    status = getattr(message, "anymail_status", None)
    message_id = getattr(status, "message_id", None) if status is not None else None
    if isinstance(message_id, set):  # anymail gives a set when recipients differ
        message_id = next(iter(message_id), None) if len(message_id) == 1 else None
    return "" if message_id is None else str(message_id)
