"""Query-string filters for the follow-ups API list (django-filter).

A value that cannot be read (an unknown status, a word where an id goes, "maybe" for a
boolean) answers 400 with the field named; nothing here raises past the form.
"""

import django_filters as filters
from django import forms
from django.db.models import Q
from django.utils.timezone import now
from drf_spectacular.utils import extend_schema_field

from accounts.filters import IntegerFilter, StrictBooleanFilter
from followups.models import OPEN_STATUSES, FollowUp, Playbook, Status
from responses.models import Category

STATUS_HELP = (
    "One status or a comma-separated list: new, in_progress, waiting, closed "
    "(e.g. `new,in_progress`)."
)


class _StatusListField(forms.Field):
    """`new` or `new,in_progress`: every item must be a known status."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in self.empty_values:
            return None
        items = [part.strip() for part in str(value).split(",") if part.strip()]
        if not items:
            return None
        unknown = [item for item in items if item not in Status.values]
        if unknown:
            raise forms.ValidationError(
                "Unknown status “%(unknown)s”: use new, in_progress, waiting or closed.",
                code="invalid_choice",
                params={"unknown": ", ".join(unknown)},
            )
        return list(dict.fromkeys(items))

    def validate(self, value):
        pass  # None (not given) is fine: the filter is skipped.


class StatusListFilter(filters.Filter):
    field_class = _StatusListField

    def filter(self, qs, value):
        if not value:
            return qs
        return qs.filter(status__in=value)


class FollowUpFilter(filters.FilterSet):
    status = extend_schema_field({"type": "string", "description": STATUS_HELP})(
        StatusListFilter(help_text=STATUS_HELP)
    )
    playbook = filters.ChoiceFilter(choices=Playbook.choices)
    assignee = filters.CharFilter(
        field_name="assignee__email",
        lookup_expr="iexact",
        help_text="The assignee's email (any case).",
    )
    account = extend_schema_field({"type": "integer", "description": "The account's id."})(
        IntegerFilter(field_name="account_id", help_text="The account's id.")
    )
    category = filters.ChoiceFilter(
        field_name="response__category",
        choices=Category.choices,
        help_text="The response's category.",
    )
    overdue = StrictBooleanFilter(
        method="filter_overdue",
        help_text="true: open and past due_at; false: closed, or not yet due.",
    )

    class Meta:
        model = FollowUp
        fields = []

    def filter_overdue(self, queryset, name, value):
        if value is None:
            return queryset
        late = Q(status__in=OPEN_STATUSES, due_at__lt=now())
        return queryset.filter(late) if value else queryset.exclude(late)
