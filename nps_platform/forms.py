from django import forms
from django.contrib.auth.forms import AuthenticationForm

from nps_platform.models import TIMEZONE_CHOICES, Role


class SignInForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    def clean_username(self):
        return self.cleaned_data["username"].strip().lower()

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match. Check both and try again.",
    }


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=200)
    timezone = forms.ChoiceField(choices=TIMEZONE_CHOICES)
    currency = forms.RegexField(
        regex=r"^[A-Za-z]{3}$",
        max_length=3,
        help_text="Three-letter ISO 4217 code, such as USD or EUR.",
        error_messages={"invalid": "Use a three-letter currency code, such as USD or EUR."},
    )


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.CS_MANAGER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What uses the key, so you know which to revoke later."
    )


class AcceptInvitationForm(forms.Form):
    name = forms.CharField(max_length=150, label="Your name")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not a common password.",
    )


def axes_username(request, credentials=None) -> str:
    """The account django-axes counts failures against: the email as typed, lower-cased,
    so changing its case does not earn a fresh set of attempts."""
    value = (credentials or {}).get("username") or request.POST.get("username", "")
    return value.strip().lower()
