"""Forms of the survey admin pages. They only carry and shape the input: every rule lives in
surveys.services, whose ValidationError messages the views attach back to these fields."""

from django import forms
from django.core.exceptions import ValidationError

from surveys.models import InvitationState, SkipReason, Survey
from surveys.texts import STOCK_TEXTS, SURVEY_FIELDS

TRANSLATION_LANGUAGES = ("de",)
LANGUAGE_NAMES = {"en": "English", "de": "German"}
TRIGGER_ROWS = 4
PREVIEW_LANGUAGES = (("en", "English"), ("de", "German"))

_LONG = {"email_intro"}


def _text(label: str, *, long=False, required=False, max_length=300, help_text=""):
    widget = forms.Textarea(attrs={"rows": 3}) if long else forms.TextInput()
    return forms.CharField(
        label=label,
        required=required,
        max_length=None if long else max_length,
        widget=widget,
        help_text=help_text,
        strip=True,
    )


FIELD_LABELS = {
    "question": "Question",
    "prompt_detractor": "Follow-up for detractors (0–6)",
    "prompt_passive": "Follow-up for passives (7–8)",
    "prompt_promoter": "Follow-up for promoters (9–10)",
    "thanks_detractor": "Thank-you for detractors",
    "thanks_passive": "Thank-you for passives",
    "thanks_promoter": "Thank-you for promoters",
    "email_subject": "Email subject",
    "email_intro": "Email introduction",
}


class SurveyForm(forms.Form):
    name = _text("Name", max_length=200)
    is_active = forms.BooleanField(label="Active", required=False)
    logo_url = forms.CharField(label="Logo URL", required=False, max_length=500)
    brand_color = forms.CharField(
        label="Brand colour",
        required=False,
        max_length=7,
        widget=forms.TextInput(attrs={"type": "color"}),
    )
    sender_name = _text("Sender name", max_length=100)
    sender_email = forms.CharField(
        label="Sender email", required=False, max_length=254, widget=forms.EmailInput()
    )
    reply_to = forms.CharField(
        label="Reply-to", required=False, max_length=254, widget=forms.EmailInput()
    )
    preview_lang = forms.ChoiceField(
        label="Preview language",
        choices=PREVIEW_LANGUAGES,
        required=False,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, survey: Survey | None = None, **kwargs):
        self.survey = survey
        if "initial" not in kwargs and not args:
            kwargs["initial"] = self.initial_for(survey)
        super().__init__(*args, **kwargs)
        for name in SURVEY_FIELDS:
            self.fields[name] = _text(FIELD_LABELS[name], long=name in _LONG)
        for lang in TRANSLATION_LANGUAGES:
            stock = STOCK_TEXTS.get(lang, {})
            for name in SURVEY_FIELDS:
                field = _text(FIELD_LABELS[name], long=name in _LONG)
                field.widget.attrs["placeholder"] = stock.get(name, "")
                field.widget.attrs["lang"] = lang
                self.fields[f"{lang}_{name}"] = field
        # {org} and {first_name} are filled in when sent.
        self.fields["question"].help_text = "{org} becomes your organization's name."
        self.fields["email_intro"].help_text = "{first_name} becomes the contact's first name."

    @staticmethod
    def initial_for(survey: Survey | None) -> dict:
        survey = survey or Survey()
        initial = {
            "name": survey.name,
            "is_active": survey.is_active,
            "logo_url": survey.logo_url,
            "brand_color": survey.brand_color or "#4F46E5",
            "sender_name": survey.sender_name,
            "sender_email": survey.sender_email,
            "reply_to": survey.reply_to,
            "preview_lang": "en",
        }
        for name in SURVEY_FIELDS:
            initial[name] = getattr(survey, name)
        for lang in TRANSLATION_LANGUAGES:
            texts = (survey.translations or {}).get(lang) or {}
            for name in SURVEY_FIELDS:
                initial[f"{lang}_{name}"] = texts.get(name, "") if isinstance(texts, dict) else ""
        return initial

    def translation_blocks(self):
        return [
            {
                "code": lang,
                "name": LANGUAGE_NAMES.get(lang, lang),
                "fields": [self[f"{lang}_{name}"] for name in SURVEY_FIELDS],
            }
            for lang in TRANSLATION_LANGUAGES
        ]

    def survey_field_rows(self, names):
        return [self[name] for name in names]

    def values(self) -> dict:
        """The fields for services.survey_save (call after is_valid)."""
        data = self.cleaned_data
        translations = dict((self.survey.translations if self.survey else None) or {})
        for lang in TRANSLATION_LANGUAGES:
            texts = {
                name: data.get(f"{lang}_{name}", "")
                for name in SURVEY_FIELDS
                if data.get(f"{lang}_{name}")
            }
            if texts:
                translations[lang] = texts
            else:
                translations.pop(lang, None)
        values = {
            "name": data.get("name", ""),
            "is_active": bool(data.get("is_active")),
            "logo_url": data.get("logo_url", ""),
            "brand_color": data.get("brand_color", ""),
            "sender_name": data.get("sender_name", ""),
            "sender_email": data.get("sender_email", ""),
            "reply_to": data.get("reply_to", ""),
            "translations": translations,
        }
        for name in SURVEY_FIELDS:
            values[name] = data.get(name, "")
        return values

    def attach(self, exc: ValidationError) -> None:
        """Service messages onto fields (translations onto the form)."""
        for name, messages in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)


class ProgrammeForm(forms.Form):
    PACING = (("drip", "Drip: spread the segment evenly over the cycle"), ("cap", "Daily cap"))

    name = _text("Name", max_length=200)
    survey = forms.ChoiceField(label="Survey", required=False)
    segment = forms.ChoiceField(label="Segment", required=False)
    channel_email = forms.BooleanField(label="Email", required=False)
    channel_link = forms.BooleanField(label="Shareable link", required=False)
    channel_in_app = forms.BooleanField(label="In-app widget", required=False)
    every_days = forms.CharField(
        label="Ask each contact again every … days", widget=forms.NumberInput(attrs={"min": 1})
    )
    account_cap = forms.CharField(
        label="Account cap: at most … contacts of one account",
        required=False,
        widget=forms.NumberInput(attrs={"min": 1}),
        help_text="Empty: no cap.",
    )
    account_cap_days = forms.CharField(
        label="…within … days", widget=forms.NumberInput(attrs={"min": 1})
    )
    min_tenure_days = forms.CharField(
        label="First survey after … days as a customer",
        widget=forms.NumberInput(attrs={"min": 0}),
    )
    pacing = forms.ChoiceField(
        label="Pacing", choices=PACING, widget=forms.RadioSelect, required=False
    )
    daily_cap = forms.CharField(
        label="Daily cap (sends a day)",
        required=False,
        widget=forms.NumberInput(attrs={"min": 1}),
    )
    window_start_hour = forms.CharField(
        label="Send window from (hour)", widget=forms.NumberInput(attrs={"min": 0, "max": 23})
    )
    window_end_hour = forms.CharField(
        label="to (hour)", widget=forms.NumberInput(attrs={"min": 1, "max": 24})
    )
    business_days_only = forms.BooleanField(label="Business days only (Mon–Fri)", required=False)
    reminder_after_days = forms.CharField(
        label="One reminder after … days if unanswered",
        required=False,
        widget=forms.NumberInput(attrs={"min": 1}),
        help_text="Empty: no reminder.",
    )
    is_active = forms.BooleanField(label="Active", required=False)

    def __init__(self, *args, surveys=(), segments=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["survey"].choices = [("", "Choose a survey…")] + [
            (str(s.pk), s.name) for s in surveys
        ]
        self.fields["segment"].choices = [("", "All contacts")] + [
            (str(s.pk), s.name) for s in segments
        ]
        for number in range(TRIGGER_ROWS):
            self.fields[f"trigger_event_{number}"] = forms.CharField(
                label=f"Trigger {number + 1}: event name",
                required=False,
                max_length=100,
                widget=forms.TextInput(attrs={"placeholder": "e.g. onboarding_completed"}),
            )
            self.fields[f"trigger_delay_{number}"] = forms.CharField(
                label=f"Trigger {number + 1}: delay in days",
                required=False,
                widget=forms.NumberInput(attrs={"min": 0}),
            )

    @staticmethod
    def initial_for(programme) -> dict:
        initial = {
            "name": programme.name,
            "survey": str(programme.survey_id or ""),
            "segment": str(programme.segment_id or ""),
            "channel_email": programme.channel_email,
            "channel_link": programme.channel_link,
            "channel_in_app": programme.channel_in_app,
            "every_days": programme.every_days,
            "account_cap": programme.account_cap or "",
            "account_cap_days": programme.account_cap_days,
            "min_tenure_days": programme.min_tenure_days,
            "pacing": "cap" if programme.daily_cap else "drip",
            "daily_cap": programme.daily_cap or "",
            "window_start_hour": programme.window_start_hour,
            "window_end_hour": programme.window_end_hour,
            "business_days_only": programme.business_days_only,
            "reminder_after_days": programme.reminder_after_days or "",
            "is_active": programme.is_active,
        }
        for number, trigger in enumerate((programme.triggers or [])[:TRIGGER_ROWS]):
            initial[f"trigger_event_{number}"] = trigger.get("event", "")
            initial[f"trigger_delay_{number}"] = trigger.get("delay_days", "")
        return initial

    def trigger_rows(self):
        return [
            (number + 1, self[f"trigger_event_{number}"], self[f"trigger_delay_{number}"])
            for number in range(TRIGGER_ROWS)
        ]

    def values(self) -> dict:
        data = self.cleaned_data
        triggers = []
        for number in range(TRIGGER_ROWS):
            event = data.get(f"trigger_event_{number}", "")
            if event:
                triggers.append(
                    {"event": event, "delay_days": data.get(f"trigger_delay_{number}", "")}
                )
        pacing = data.get("pacing") or ("cap" if data.get("daily_cap") else "drip")
        return {
            "name": data.get("name", ""),
            "survey": data.get("survey") or None,
            "segment": data.get("segment") or None,
            "channel_email": bool(data.get("channel_email")),
            "channel_link": bool(data.get("channel_link")),
            "channel_in_app": bool(data.get("channel_in_app")),
            "every_days": data.get("every_days", ""),
            "account_cap": data.get("account_cap", ""),
            "account_cap_days": data.get("account_cap_days", ""),
            "min_tenure_days": data.get("min_tenure_days", ""),
            "daily_cap": data.get("daily_cap", "") if pacing == "cap" else None,
            "window_start_hour": data.get("window_start_hour", ""),
            "window_end_hour": data.get("window_end_hour", ""),
            "business_days_only": bool(data.get("business_days_only")),
            "reminder_after_days": data.get("reminder_after_days", ""),
            "triggers": triggers,
            "is_active": bool(data.get("is_active")),
        }

    def attach(self, exc: ValidationError) -> None:
        for name, messages in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
            target = name if name in self.fields else None
            if name == "triggers":
                target = "trigger_event_0"
            for message in messages:
                self.add_error(target, message)


class SendLogFilterForm(forms.Form):
    email = forms.CharField(label="Contact email", required=False, max_length=254)
    programme = forms.ChoiceField(label="Programme", required=False)
    state = forms.ChoiceField(
        label="State", required=False, choices=[("", "Any state"), *InvitationState.choices]
    )
    skip_reason = forms.ChoiceField(
        label="Skip reason", required=False, choices=[("", "Any reason"), *SkipReason.choices]
    )
    since = forms.DateField(
        label="Planned from", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="Planned until", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, programmes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["programme"].choices = [("", "All programmes")] + [
            (str(p.pk), p.name) for p in programmes
        ]

    def values(self) -> dict:
        if not self.is_valid():
            data = {
                name: value for name, value in self.cleaned_data.items() if name not in self.errors
            }
        else:
            data = self.cleaned_data
        return {
            "email": data.get("email") or None,
            "programme": data.get("programme") or None,
            "state": data.get("state") or None,
            "skip_reason": data.get("skip_reason") or None,
            "since": data.get("since"),
            "until": data.get("until"),
        }

    @property
    def is_filtered(self) -> bool:
        return any(self.values().values())


class SurveySettingsForm(forms.Form):
    fatigue_days = forms.CharField(
        label="Fatigue period (days)",
        widget=forms.NumberInput(attrs={"min": 0, "max": 3650}),
        help_text="Nobody is surveyed twice within this many days, by any programme.",
    )
    postal_address = forms.CharField(
        label="Postal address",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown in every survey email, as anti-spam law asks.",
    )

    def attach(self, exc: ValidationError) -> None:
        for name, messages in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
