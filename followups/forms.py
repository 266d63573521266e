"""Forms of the follow-up pages: the queue's filters and bulk assign, a follow-up's actions,
and the playbook settings. Rules live in followups.services; these forms only read input."""

from django import forms

from followups.models import ActivityKind, Outcome, Playbook, Status
from followups.selectors import TABS
from responses.models import Category

OPEN_CHOICES = [(s.value, s.label) for s in Status if s != Status.CLOSED]


class TextField(forms.CharField):
    """Text from a textarea with the browser's CRLF line ends turned into plain newlines, so
    what is sent or stored is what was typed."""

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n").replace("\r", "\n") if value else value


def _people(memberships) -> list[tuple[str, str]]:
    return [(str(m.user_id), m.user.display_name) for m in memberships]


# --- The queue -------------------------------------------------------------------------------


class QueueFilterForm(forms.Form):
    """Shows the queue's filters (GET); selectors.queue_filters parses the query string."""

    tab = forms.ChoiceField(choices=list(TABS.items()), required=False, widget=forms.HiddenInput)
    category = forms.ChoiceField(
        label="Category", required=False, choices=[("", "All categories"), *Category.choices]
    )
    playbook = forms.ChoiceField(
        label="Playbook", required=False, choices=[("", "Every playbook"), *Playbook.choices]
    )
    segment = forms.ChoiceField(label="Segment", required=False)
    owner = forms.ChoiceField(label="Assignee", required=False)
    theme = forms.ChoiceField(label="Theme", required=False)

    def __init__(self, data=None, *, segment_list=(), taxonomy=None, workers=()):
        super().__init__(data)
        self.fields["segment"].choices = [("", "All customers")] + [
            (str(s.pk), s.name) for s in segment_list
        ]
        self.fields["owner"].choices = [
            ("", "Anyone"),
            ("none", "Nobody (unassigned)"),
            *_people(workers),
        ]
        themes = (
            sorted(taxonomy.names().items(), key=lambda item: item[1].lower()) if taxonomy else []
        )
        self.fields["theme"].choices = [("", "Any theme"), *themes]
        self.fields["tab"].widget.attrs["id"] = "queue-tab"


class BulkAssignForm(forms.Form):
    followup = forms.TypedMultipleChoiceField(
        coerce=int,
        error_messages={"required": "Select at least one follow-up."},
    )
    # Checked by the service (a CS manager or admin of this organization), not by the choices,
    # so a refused person gets the rule's own message.
    assignee = forms.CharField(
        label="Assign to",
        max_length=20,
        widget=forms.Select,
        error_messages={"required": "Choose whom to assign them to."},
    )

    def __init__(self, data=None, *, workers=()):
        super().__init__(data)
        self.fields["assignee"].widget.choices = [("", "Choose a person…"), *_people(workers)]
        # Any number is accepted here; services keep only this organization's follow-ups.
        ids = data.getlist("followup") if data is not None and hasattr(data, "getlist") else []
        self.fields["followup"].choices = [(v, v) for v in ids if str(v).isdigit()]


# --- A follow-up's actions -------------------------------------------------------------------


class DraftForm(forms.Form):
    subject = forms.CharField(label="Subject", max_length=300, required=False)
    body = TextField(
        label="Message",
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "true"}),
    )


class LogForm(forms.Form):
    kind = forms.ChoiceField(
        label="What",
        choices=[(ActivityKind.NOTE, "Note"), (ActivityKind.CALL, "Call")],
        initial=ActivityKind.NOTE,
        widget=forms.RadioSelect,
    )
    message = TextField(
        label="What happened",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Called Ann: the export fix…"}),
        error_messages={"required": "Write what happened."},
    )


class StatusForm(forms.Form):
    status = forms.ChoiceField(label="Status", choices=OPEN_CHOICES)


class AssignForm(forms.Form):
    assignee = forms.ChoiceField(label="Assignee", required=False)

    def __init__(self, data=None, *, workers=(), **kwargs):
        super().__init__(data, **kwargs)
        self.fields["assignee"].choices = [("", "Nobody (unassigned)"), *_people(workers)]


class CloseForm(forms.Form):
    outcome = forms.ChoiceField(
        label="Outcome",
        choices=[("", "Choose an outcome…"), *Outcome.choices],
        error_messages={"required": "Choose an outcome to close the follow-up."},
    )
    notes = TextField(
        label="Closing notes",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


# --- Playbook settings -----------------------------------------------------------------------


class PlaybookTemplateForm(forms.Form):
    playbook = forms.ChoiceField(choices=Playbook.choices, widget=forms.HiddenInput)
    subject = forms.CharField(
        label="Subject",
        max_length=300,
        error_messages={"required": "Write a subject."},
        widget=forms.TextInput(attrs={"spellcheck": "false", "class": "fu-code"}),
    )
    body = TextField(
        label="Message",
        max_length=20000,
        error_messages={"required": "Write the message."},
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "fu-code"}),
    )
    sla_hours = forms.IntegerField(
        label="Reply within (hours)",
        min_value=1,
        max_value=720,
        help_text="The SLA: a new follow-up of this playbook is due this long after the answer.",
    )

    def __init__(self, data=None, *, playbook: str, **kwargs):
        # Four of these share a page: ids carry the playbook, names stay plain.
        super().__init__(data, auto_id=f"id_{playbook}_%s", **kwargs)


class AssignmentRuleForm(forms.Form):
    segment = forms.ChoiceField(
        label="Accounts in segment", error_messages={"required": "Choose a segment."}
    )
    # Checked by the service, so an outsider gets the rule's own message.
    assignee = forms.CharField(
        label="Go to",
        max_length=20,
        widget=forms.Select,
        error_messages={"required": "Choose a person."},
    )

    def __init__(self, data=None, *, segment_list=(), workers=()):
        super().__init__(data)
        self.fields["segment"].choices = [("", "Choose a segment…")] + [
            (str(s.pk), s.name) for s in segment_list
        ]
        self.fields["assignee"].widget.choices = [("", "Choose a person…"), *_people(workers)]


class MemberPauseForm(forms.Form):
    user = forms.ChoiceField(label="Teammate", error_messages={"required": "Choose a teammate."})
    until = forms.DateField(
        label="Until (optional)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Empty: paused until you resume them.",
    )

    def __init__(self, data=None, *, members=()):
        super().__init__(data)
        self.fields["user"].choices = [("", "Choose a teammate…"), *_people(members)]


class FollowUpSettingsForm(forms.Form):
    auto_send_thanks = forms.BooleanField(
        label="Send promoter thank-yous and passive nudges automatically",
        required=False,
        help_text="Off by default. Detractors never get an automated email: a person always "
        "reviews and sends theirs, or calls.",
    )
    escalate_after_hours = forms.IntegerField(
        label="Escalate to the admins when overdue by (hours)",
        min_value=1,
        max_value=720,
    )
