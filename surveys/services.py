"""Writes for surveys, programmes and the organization's survey settings. Each validates its
input and raises ValidationError({field: message}) with words an admin can act on."""

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model

from accounts.models import Segment
from nps_platform.models import Organization
from surveys.models import Invitation, InvitationState, Programme, Survey, SurveySettings
from surveys.texts import SURVEY_FIELDS

SURVEY_EDITABLE = (
    "name",
    *SURVEY_FIELDS,
    "logo_url",
    "brand_color",
    "sender_name",
    "sender_email",
    "reply_to",
    "translations",
    "is_active",
)
PROGRAMME_EDITABLE = (
    "name",
    "survey",
    "segment",
    "channel_email",
    "channel_link",
    "channel_in_app",
    "every_days",
    "account_cap",
    "account_cap_days",
    "min_tenure_days",
    "daily_cap",
    "window_start_hour",
    "window_end_hour",
    "business_days_only",
    "reminder_after_days",
    "triggers",
    "is_active",
)
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
_EVENT_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
MAX_DELAY_DAYS = 365
MAX_SMALL = 32_767  # PositiveSmallIntegerField


def survey_settings_for(organization: Organization) -> SurveySettings:
    """The organization's survey settings, made with the defaults on first use."""
    found, _ = SurveySettings.objects.get_or_create(organization=organization)
    return found


def survey_settings_save(
    *, organization: Organization, fatigue_days=None, postal_address=None
) -> SurveySettings:
    settings_row = survey_settings_for(organization)
    errors = {}
    if fatigue_days is not None:
        days = _whole(fatigue_days, errors, "fatigue_days", low=0, high=3650)
        if days is not None:
            settings_row.fatigue_days = days
    if postal_address is not None:
        address = str(postal_address).strip()
        if len(address) > 300:
            errors["postal_address"] = "Keep the postal address under 300 characters."
        settings_row.postal_address = address
    if errors:
        raise ValidationError(errors)
    settings_row.save()
    return settings_row


def _whole(value, errors: dict, name: str, *, low: int, high: int, label: str = ""):
    """An int in [low, high], or None with a message in errors."""
    label = label or name.replace("_", " ").capitalize()
    if isinstance(value, bool):
        value = None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        errors[name] = f"{label} must be a whole number."
        return None
    if not low <= number <= high:
        errors[name] = f"{label} must be between {low} and {high}."
        return None
    return number


def _unknown(fields: dict, allowed) -> None:
    extra = sorted(set(fields) - set(allowed))
    if extra:
        raise ValidationError(dict.fromkeys(extra, "This field cannot be set here."))


def _model_errors(instance: Model, exclude=()) -> dict:
    try:
        instance.full_clean(exclude=[*exclude], validate_constraints=False)
    except ValidationError as exc:
        return {name: " ".join(messages) for name, messages in exc.message_dict.items()}
    return {}


def _clean_translations(value, errors: dict) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        errors["translations"] = "Translations must map a language code to its texts."
        return {}
    clean = {}
    for language, texts in value.items():
        code = str(language).strip()
        if not _LANGUAGE.fullmatch(code):
            errors["translations"] = f"“{language}” is not a language code such as de or pt-BR."
            return {}
        if not isinstance(texts, dict):
            errors["translations"] = f"The {code} translation must map fields to texts."
            return {}
        unknown = sorted(set(texts) - set(SURVEY_FIELDS))
        if unknown:
            errors["translations"] = (
                f"The {code} translation names unknown fields: {', '.join(unknown)}."
            )
            return {}
        kept = {name: str(text).strip() for name, text in texts.items() if str(text).strip()}
        if kept:
            clean[code] = kept
    return clean


def survey_save(*, organization: Organization, survey: Survey | None = None, **fields) -> Survey:
    """Creates (survey=None) or edits a survey. Fields are the survey's editable ones."""
    _unknown(fields, SURVEY_EDITABLE)
    survey = survey or Survey(organization=organization)
    errors: dict[str, str] = {}
    for name, value in fields.items():
        if name == "translations":
            value = _clean_translations(value, errors)
        elif name == "is_active":
            value = bool(value)
        elif isinstance(value, str):
            value = value.strip()
        elif value is None:
            value = ""
        setattr(survey, name, value)
    if not survey.name:
        errors["name"] = "Give the survey a name."
    if not survey.question:
        errors["question"] = "Ask the question: it is what the respondent answers."
    if survey.brand_color and not _HEX_COLOR.fullmatch(survey.brand_color):
        errors["brand_color"] = "Give the colour as #rrggbb, for example #4F46E5."
    elif survey.brand_color and len(survey.brand_color) == 4:
        survey.brand_color = "#" + "".join(c * 2 for c in survey.brand_color[1:])
    clash = Survey.objects.filter(organization=organization, name__iexact=survey.name)
    if survey.pk:
        clash = clash.exclude(pk=survey.pk)
    if survey.name and clash.exists():
        errors["name"] = f"A survey named “{survey.name}” exists already."
    for name, message in _model_errors(survey, exclude=["organization", "public_id"]).items():
        errors.setdefault(name, message)
    if errors:
        raise ValidationError(errors)
    survey.save()
    return survey


def _owned(model, value, organization: Organization, errors: dict, name: str, what: str):
    """The organization's object given as an instance or id, else None with a message."""
    if value in (None, ""):
        return None
    pk = value.pk if isinstance(value, model) else value
    found = model.objects.filter(organization=organization, pk=pk).first() if pk else None
    if found is None:
        errors[name] = f"Choose one of your {what}."
    return found


def _clean_triggers(value, errors: dict) -> list[dict]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        errors["triggers"] = "Triggers must be a list of events with a delay in days."
        return []
    clean, seen = [], set()
    for number, trigger in enumerate(value, start=1):
        if not isinstance(trigger, dict):
            errors["triggers"] = f"Trigger {number} must name an event and a delay."
            return []
        event = str(trigger.get("event") or "").strip()
        if not _EVENT_NAME.fullmatch(event):
            errors["triggers"] = (
                f"Trigger {number}: name the event in letters, digits, _ . : or -, "
                "for example onboarding_completed."
            )
            return []
        if event in seen:
            errors["triggers"] = f"The event {event} is listed twice."
            return []
        seen.add(event)
        raw = trigger.get("delay_days")
        delay = _whole(
            0 if raw in (None, "") else raw,
            errors,
            "triggers",
            low=0,
            high=MAX_DELAY_DAYS,
            label=f"Trigger {number}: the delay",
        )
        if delay is None:
            return []
        clean.append({"event": event, "delay_days": delay})
    return clean


INT_FIELDS = {
    # name: (low, high, may be empty, label)
    "every_days": (1, MAX_SMALL, False, "Every … days"),
    "account_cap": (1, MAX_SMALL, True, "The account cap"),
    "account_cap_days": (1, MAX_SMALL, False, "The account cap window"),
    "min_tenure_days": (0, MAX_SMALL, False, "The tenure minimum"),
    "daily_cap": (1, 10_000_000, True, "The daily cap"),
    "window_start_hour": (0, 23, False, "The window start"),
    "window_end_hour": (1, 24, False, "The window end"),
    "reminder_after_days": (1, 365, True, "The reminder delay"),
}


def programme_save(
    *, organization: Organization, programme: Programme | None = None, **fields
) -> Programme:
    """Creates (programme=None) or edits a programme. `survey` and `segment` may be given as
    objects or ids of this organization. Pausing a programme withdraws its planned (not yet
    sent) invitations."""
    _unknown(fields, PROGRAMME_EDITABLE)
    creating = programme is None
    programme = programme or Programme(organization=organization)
    was_active = creating or programme.is_active
    errors: dict[str, str] = {}
    for name, value in fields.items():
        if name == "survey":
            value = _owned(Survey, value, organization, errors, name, "surveys")
        elif name == "segment":
            value = _owned(Segment, value, organization, errors, name, "segments")
        elif name == "triggers":
            value = _clean_triggers(value, errors)
        elif name in INT_FIELDS:
            low, high, optional, label = INT_FIELDS[name]
            if optional and value in (None, ""):
                value = None
            else:
                value = _whole(value, errors, name, low=low, high=high, label=label)
                if value is None:
                    continue
        elif name.startswith("channel_") or name in {"business_days_only", "is_active"}:
            value = bool(value)
        elif name == "name":
            value = str(value or "").strip()
        setattr(programme, name, value)
    if not programme.name:
        errors["name"] = "Give the programme a name."
    if programme.survey_id is None and "survey" not in errors:
        errors["survey"] = "Choose the survey this programme sends."
    if not (programme.channel_email or programme.channel_link or programme.channel_in_app):
        errors["channel_email"] = "Choose at least one channel: email, link or in-app."
    if (
        "window_start_hour" not in errors
        and "window_end_hour" not in errors
        and programme.window_start_hour >= programme.window_end_hour
    ):
        errors["window_end_hour"] = "The send window must end after it starts."
    if (
        programme.reminder_after_days
        and "every_days" not in errors
        and programme.reminder_after_days >= programme.every_days
    ):
        errors["reminder_after_days"] = (
            "Send the reminder before the contact is due again (fewer days than every … days)."
        )
    clash = Programme.objects.filter(organization=organization, name__iexact=programme.name)
    if programme.pk:
        clash = clash.exclude(pk=programme.pk)
    if programme.name and clash.exists():
        errors["name"] = f"A programme named “{programme.name}” exists already."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        programme.save()
        if was_active and not programme.is_active and not creating:
            Invitation.objects.filter(
                organization=organization, programme=programme, state=InvitationState.PLANNED
            ).delete()
    return programme
