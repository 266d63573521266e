"""Forms of the webhook and Slack settings pages."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from responses import slack, webhooks
from responses.models import PayloadFormat, WebhookEvent

ALL_EVENTS = "all"


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=1000,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/webhooks/nps"}),
        help_text="We POST JSON here, signed with the endpoint's secret (Standard Webhooks).",
    )
    description = forms.CharField(
        max_length=200, required=False, help_text="What receives it, e.g. “CRM sync”."
    )
    events = forms.MultipleChoiceField(
        choices=[(ALL_EVENTS, "All events, including ones added later"), *WebhookEvent.choices],
        widget=forms.CheckboxSelectMultiple,
        initial=[ALL_EVENTS],
        error_messages={"required": "Choose the events to send, or “All events”."},
    )
    payload_format = forms.ChoiceField(
        label="Payload format",
        choices=PayloadFormat.choices,
        initial=PayloadFormat.STANDARD,
        required=False,
        help_text="Delighted's format sends survey_response.created, survey_response.updated "
        "and (with all events) unsubscribe.created as {event_type, event_id, event_data}, "
        "for receivers written for Delighted.",
    )

    def clean_url(self):
        url = self.cleaned_data["url"].strip()
        try:
            webhooks.url_problem(url)
        except (webhooks.UnsafeURL, webhooks.HostNotFound) as exc:
            raise ValidationError(str(exc)) from None
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise ValidationError(
                "Enter a full URL, such as https://example.com/webhooks/nps."
            ) from None
        return url

    def clean_payload_format(self):
        return self.cleaned_data.get("payload_format") or PayloadFormat.STANDARD

    def clean_events(self):
        chosen = set(self.cleaned_data["events"])
        if ALL_EVENTS in chosen or chosen >= set(WebhookEvent.values):
            return []
        return sorted(chosen)


class SlackAlertForm(forms.Form):
    webhook_url = forms.CharField(
        label="Slack incoming-webhook URL",
        max_length=500,
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.slack.com/services/…"}),
        help_text="In Slack: Apps → Incoming Webhooks → Add to a channel, then copy the URL.",
    )
    only_danger_zone = forms.BooleanField(
        required=False,
        label="Only danger zone (scores 0–3)",
    )
    min_arr = forms.DecimalField(
        label="Minimum ARR",
        required=False,
        min_value=0,
        max_digits=14,
        decimal_places=2,
        help_text="Alert only for accounts at or above this ARR. Empty: every account.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Send alerts")

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"].strip()
        if problem := slack.webhook_url_problem(url):
            raise ValidationError(problem)
        return url
