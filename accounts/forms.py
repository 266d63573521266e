"""Forms of the account pages: the list's filters and the segment editor."""

from django import forms
from django.core.exceptions import ValidationError

from accounts import segments
from accounts.models import LifecycleStage
from accounts.selectors import ACCOUNT_SORTS, HEALTH_BANDS

# --- The accounts list ----------------------------------------------------------------------


class AccountFilterForm(forms.Form):
    """The list's search, filters and sort (GET). Values that are not offered are dropped,
    so a stale or foreign id filters nothing rather than failing."""

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name, domain or ID", "autocomplete": "off"}
        ),
    )
    segment = forms.ChoiceField(label="Segment", required=False)
    plan = forms.ChoiceField(label="Plan", required=False)
    owner = forms.ChoiceField(label="Owner", required=False)
    health = forms.ChoiceField(
        label="Health",
        required=False,
        choices=[("", "Any health")] + [(key, label) for key, (label, _) in HEALTH_BANDS.items()],
    )
    stage = forms.ChoiceField(
        label="Lifecycle",
        required=False,
        choices=[("", "Any stage"), *LifecycleStage.choices],
    )
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=[(key, label) for key, (label, _) in ACCOUNT_SORTS.items()],
    )

    FILTERS = ("q", "segment", "plan", "owner", "health", "stage")

    def __init__(self, data=None, *, segment_list=(), plans=(), members=()):
        super().__init__(data)
        self.fields["segment"].choices = [("", "All accounts")] + [
            (str(segment.pk), segment.name) for segment in segment_list
        ]
        self.fields["plan"].choices = [("", "Any plan")] + [(plan, plan) for plan in plans]
        self.fields["owner"].choices = [
            ("", "Anyone"),
            ("none", "Nobody (unassigned)"),
        ] + [(str(member.user_id), member.user.display_name) for member in members]

    def values(self) -> dict:
        """The valid filters, blank for the rest."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        values = {name: data.get(name) or "" for name in self.fields}
        values["sort"] = values["sort"] or "name"
        return values

    @property
    def is_filtered(self) -> bool:
        values = self.values()
        return any(values[name] for name in self.FILTERS)


# --- The segment editor ---------------------------------------------------------------------

PROPERTY_FIELDS = {"properties": "properties", "contact.properties": "contact.properties"}

FIELD_LABELS = {
    "name": "Name",
    "domain": "Domain",
    "plan": "Plan",
    "industry": "Industry",
    "size": "Size (headcount band)",
    "lifecycle_stage": "Lifecycle stage",
    "arr": "ARR",
    "health_score": "Health score (0–100)",
    "last_score": "Last NPS score (0–10)",
    "tenure_days": "Tenure (days)",
    "renewal_date": "Renewal date",
    "signed_up_on": "Signed up on",
    "owner": "Owner (email)",
    "churned": "Churned",
    "properties": "Account property…",
    "contact.email": "Email",
    "contact.title": "Role / title",
    "contact.locale": "Locale",
    "contact.timezone": "Timezone",
    "contact.suppressed": "Suppressed",
    "contact.properties": "Contact property…",
}

FIELD_CHOICES = [
    ("", "Choose a field"),
    (
        "Account",
        [(name, FIELD_LABELS[name]) for name in [*segments.ACCOUNT_FIELDS, "properties"]],
    ),
    (
        "Contact",
        [(name, FIELD_LABELS[name]) for name in [*segments.CONTACT_FIELDS, "contact.properties"]],
    ),
]

OP_CHOICES = [
    ("eq", "is"),
    ("neq", "is not"),
    ("in", "is one of"),
    ("not_in", "is none of"),
    ("contains", "contains"),
    ("gt", "is greater than"),
    ("gte", "is at least"),
    ("lt", "is less than"),
    ("lte", "is at most"),
    ("before", "is before (date)"),
    ("after", "is after (date)"),
    ("within_next_days", "is within the next N days"),
    ("within_last_days", "was within the last N days"),
    ("is_empty", "is empty"),
    ("is_not_empty", "is set"),
    ("is_true", "is yes"),
    ("is_false", "is no"),
]
OP_LABELS = dict(OP_CHOICES)
NO_VALUE_OPS = {"is_empty", "is_not_empty", "is_true", "is_false"}


def field_kind(name: str) -> str:
    """The value type behind a field choice, for the editor's hints."""
    if name in PROPERTY_FIELDS:
        return "property"
    try:
        return segments.field_type(name)[0]
    except ValidationError:
        return ""


def ops_for(name: str) -> set[str]:
    return segments.OPS_BY_TYPE.get(field_kind(name), set())


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional: who is in it and what it is for.",
    )
    match = forms.ChoiceField(
        label="Accounts match",
        choices=[("all", "all of the conditions"), ("any", "any of the conditions")],
        initial="all",
        widget=forms.RadioSelect,
    )


class ConditionForm(forms.Form):
    """One row of the rule: field (with a key for properties), comparison, value.
    A row without a field is ignored."""

    field = forms.ChoiceField(
        label="Field",
        required=False,
        choices=FIELD_CHOICES,
        widget=forms.Select(attrs={"data-role": "field"}),
    )
    key = forms.CharField(
        label="Property name",
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={
                "data-role": "key",
                "placeholder": "property, e.g. region",
                "autocomplete": "off",
            }
        ),
    )
    op = forms.ChoiceField(
        label="Comparison",
        required=False,
        choices=OP_CHOICES,
        widget=forms.Select(attrs={"data-role": "op"}),
    )
    value = forms.CharField(
        label="Value",
        required=False,
        max_length=1000,
        widget=forms.TextInput(
            attrs={"data-role": "value", "placeholder": "value", "autocomplete": "off"}
        ),
    )

    @classmethod
    def initial_for(cls, condition: dict) -> dict:
        name = condition.get("field", "")
        key = ""
        for prefix in ("contact.properties", "properties"):
            if name.startswith(prefix + "."):
                name, key = prefix, name.removeprefix(prefix + ".")
                break
        value = condition.get("value")
        if isinstance(value, list):
            value = ", ".join(value)
        return {"field": name, "key": key, "op": condition.get("op", ""), "value": value or ""}

    def clean(self):
        data = super().clean()
        name = data.get("field") or ""
        if not name:
            return data
        if name in PROPERTY_FIELDS:
            key = (data.get("key") or "").strip()
            if not key:
                raise ValidationError("Name the property, e.g. region.")
            name = f"{name}.{key}"
        op = data.get("op") or ""
        if not op:
            raise ValidationError("Choose a comparison.")
        allowed = ops_for(name)
        if op not in allowed:
            label = FIELD_LABELS.get(data["field"], name)
            words = ", ".join(f"“{text}”" for value, text in OP_CHOICES if value in allowed)
            raise ValidationError(f"{label} cannot be “{OP_LABELS[op]}”; use {words}.")
        condition = {"field": name, "op": op, "value": data.get("value")}
        try:
            rules = segments.validate_rules({"match": "all", "conditions": [condition]})
        except ValidationError as exc:
            raise ValidationError(exc.messages[0].removeprefix("Condition 1: ")) from None
        data["condition"] = rules["conditions"][0]
        return data

    @property
    def condition(self) -> dict | None:
        return getattr(self, "cleaned_data", {}).get("condition")


class BaseConditionFormSet(forms.BaseFormSet):
    def conditions(self) -> list[dict]:
        return [form.condition for form in self.forms if form.condition]

    def first_error(self) -> str | None:
        """The first row's error as "Condition 2: …", numbered as rows are shown."""
        if any(self.non_form_errors()):
            return self.non_form_errors()[0]
        for number, form in enumerate(self.forms, start=1):
            if form.errors:
                messages = form.non_field_errors() or [
                    error for errors in form.errors.values() for error in errors
                ]
                return f"Condition {number}: {messages[0]}"
        return None


MIN_CONDITION_ROWS = 5
MAX_CONDITION_ROWS = 50


def condition_formset(data=None, *, conditions=()):
    """The condition rows: the rule's conditions, padded to at least five rows."""
    initial = [ConditionForm.initial_for(condition) for condition in conditions]
    extra = max(MIN_CONDITION_ROWS - len(initial), 1)
    formset_class = forms.formset_factory(
        ConditionForm,
        formset=BaseConditionFormSet,
        extra=extra,
        max_num=MAX_CONDITION_ROWS,
        absolute_max=MAX_CONDITION_ROWS,
        validate_max=True,
    )
    return formset_class(data, initial=initial or None, prefix="conditions")
