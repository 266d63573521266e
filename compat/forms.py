from django import forms

from compat.models import ACCOUNT_TARGETS


class CompatSettingsForm(forms.Form):
    email_programme = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label="Email programme",
        empty_label="The oldest active email programme",
        help_text="Plays Delighted's email Autopilot and sends the surveys POST people schedules.",
    )
    property_mapping = forms.CharField(
        label="Property mapping",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "Customer tier = plan"}),
        help_text="One “Property name = target” a line, added to the defaults below. Targets: "
        + ", ".join(ACCOUNT_TARGETS)
        + ", or contact (keep it on the person).",
    )

    def __init__(self, *args, programmes, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email_programme"].queryset = programmes
