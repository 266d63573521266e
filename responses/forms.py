"""Forms of the response pages: the explorer's filters and the comment-theme editor."""

import re

from django import forms
from django.utils.text import slugify

from responses.analysis import DEFAULT_THEMES
from responses.models import Category, Channel

# --- The explorer -----------------------------------------------------------------------------


class ResponseFilterForm(forms.Form):
    """Renders the explorer's filters (GET). The query string itself is parsed by
    selectors.response_filters, the one parser the page, the export and the dashboard share;
    this form only offers the organization's choices and shows the current values."""

    q = forms.CharField(
        label="Search comments",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Words in comments", "autocomplete": "off"}
        ),
    )
    score = forms.ChoiceField(
        label="Score",
        required=False,
        choices=[("", "Any score")] + [(str(n), str(n)) for n in range(10, -1, -1)],
    )
    category = forms.ChoiceField(
        label="Category", required=False, choices=[("", "All categories"), *Category.choices]
    )
    theme = forms.ChoiceField(label="Theme", required=False)
    segment = forms.ChoiceField(label="Segment", required=False)
    owner = forms.ChoiceField(label="Account owner", required=False)
    channel = forms.ChoiceField(
        label="Channel", required=False, choices=[("", "Any channel"), *Channel.choices]
    )
    has_comment = forms.ChoiceField(
        label="Comment",
        required=False,
        choices=[("", "Any"), ("yes", "With a comment"), ("no", "Without a comment")],
    )
    # Set by the "All answers" link of an account's page; shown as a removable chip, not a
    # menu (an organization may have thousands of accounts).
    account = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, data=None, *, segment_list=(), taxonomy=None, members=()):
        super().__init__(data)
        # "from" and "to" are Python keywords, so these two are added by name.
        self.fields["from"] = forms.DateField(
            label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
        )
        self.fields["to"] = forms.DateField(
            label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
        )
        self.fields["segment"].choices = [("", "All customers")] + [
            (str(segment.pk), segment.name) for segment in segment_list
        ]
        themes = (
            sorted(taxonomy.names().items(), key=lambda item: item[1].lower()) if taxonomy else []
        )
        self.fields["theme"].choices = [("", "Any theme"), *themes]
        self.fields["owner"].choices = [("", "Anyone"), ("none", "Nobody (unassigned)")] + [
            (str(member.user_id), member.user.display_name) for member in members
        ]

    def field_groups(self):
        """Search first and wide; then the rest in reading order."""
        order = ["category", "score", "theme", "segment", "owner", "channel", "has_comment"]
        return self["q"], [self[name] for name in order], [self["from"], self["to"]]


# --- Comment themes ---------------------------------------------------------------------------

NEW_THEME = "__new__"
MAX_KEYWORDS = 200
MAX_KEYWORD_LENGTH = 100
WORD = re.compile(r"\w", re.UNICODE)


def theme_slug(name: str) -> str:
    """ "Security & SSO" → "security_sso": the slug style of the default themes."""
    return slugify(name).replace("-", "_")[:50].strip("_")


def split_keywords(text: str) -> list[str]:
    """Comma- or line-separated words and phrases, trimmed, lowercased, spaces collapsed,
    in the order given, without repeats."""
    seen, keywords = set(), []
    for part in re.split(r"[,\n;]", text or ""):
        keyword = " ".join(part.split()).lower()
        if keyword and keyword not in seen:
            seen.add(keyword)
            keywords.append(keyword)
    return keywords


class ThemeForm(forms.Form):
    """Adds keywords to a default theme or one of the organization's, or creates a theme."""

    theme = forms.ChoiceField(
        label="Theme",
        help_text="Add words to an existing theme, or create a new one.",
    )
    name = forms.CharField(
        label="New theme's name",
        required=False,
        max_length=100,
        help_text="Only for a new theme, e.g. “Security”.",
    )
    keywords = forms.CharField(
        label="Keywords and phrases",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "sso, single sign-on, 2fa"}),
        help_text="Separate them with commas. A word also matches words that start with it "
        "(“price” finds “pricey”); words of three letters or fewer match whole.",
        error_messages={"required": "Enter at least one keyword or phrase."},
    )

    def __init__(self, data=None, *, org_themes=()):
        super().__init__(data)
        defaults = [(slug, name) for slug, (name, _) in DEFAULT_THEMES.items()]
        own = [(t.slug, t.name) for t in org_themes if t.slug not in DEFAULT_THEMES]
        self.fields["theme"].choices = [
            ("Default themes", sorted(defaults, key=lambda c: c[1].lower())),
            *([("Your themes", own)] if own else []),
            (NEW_THEME, "Create a new theme…"),
        ]
        if not data:
            self.fields["theme"].initial = NEW_THEME

    def clean_keywords(self):
        keywords = split_keywords(self.cleaned_data["keywords"])
        if not keywords:
            raise forms.ValidationError("Enter at least one keyword or phrase.")
        too_long = [k for k in keywords if len(k) > MAX_KEYWORD_LENGTH]
        if too_long:
            raise forms.ValidationError(
                f"Keep each keyword under {MAX_KEYWORD_LENGTH} characters: "
                f"“{too_long[0][:40]}…” is longer."
            )
        no_word = [k for k in keywords if not WORD.search(k) or len(k) < 2]
        if no_word:
            raise forms.ValidationError(
                f"“{no_word[0]}” is too short to find a theme: use words of two letters or more."
            )
        if len(keywords) > MAX_KEYWORDS:
            raise forms.ValidationError(f"Add at most {MAX_KEYWORDS} keywords at once.")
        return keywords

    def clean(self):
        data = super().clean()
        if data.get("theme") == NEW_THEME:
            name = " ".join((data.get("name") or "").split())
            if not name:
                self.add_error("name", "Name the new theme.")
            elif not theme_slug(name):
                self.add_error("name", "Use letters or digits in the theme's name.")
            else:
                data["name"] = name
                data["slug"] = theme_slug(name)
        elif data.get("theme"):
            data["slug"] = data["theme"]
        return data
