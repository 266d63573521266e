"""Formatting for response pages: score badges, sentiment words, theme names, NPS."""

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()

# VADER's usual cut-offs for its compound score.
POSITIVE_FROM = 0.05
NEGATIVE_TO = -0.05
DANGER_MARK = mark_safe('<span class="nps-danger-mark" aria-hidden="true">⚠</span>')  # noqa: S308


@register.filter
def sentiment_word(value) -> str:
    """ "positive", "neutral" or "negative" for a VADER compound score; "" without one."""
    if value is None or value == "":
        return ""
    value = float(value)
    if value >= POSITIVE_FROM:
        return "positive"
    if value <= NEGATIVE_TO:
        return "negative"
    return "neutral"


@register.simple_tag
def response_score(response, size=""):
    """The score in a badge coloured by its category; the danger zone (0–3) is marked with a
    sign and in words, so colour is never the only cue."""
    category = response.category
    danger = response.danger_zone
    label = response.get_category_display() + (", danger zone" if danger else "")
    return format_html(
        '<span class="nps-score nps-{}{}{}" title="{}">{}<span class="nps-score-value">{}</span>'
        '<span class="visually-hidden"> out of 10, {}</span></span>',
        category,
        " nps-danger" if danger else "",
        f" nps-score-{size}" if size else "",
        label,
        DANGER_MARK if danger else "",
        response.score,
        label.lower(),
    )


@register.filter
def theme_name(slug, names) -> str:
    """A theme's name from the taxonomy's {slug: name}; the slug when it is not there (a theme
    the organization has since deleted)."""
    if isinstance(names, dict):
        return names.get(slug) or slug.replace("_", " ").capitalize()
    return slug


@register.filter
def nps_value(value) -> str:
    """An NPS for display: "+42", "0", "−17" (a real minus sign), "—" without answers."""
    if value is None or value == "":
        return "—"
    value = int(value)
    if value > 0:
        return f"+{value}"
    if value < 0:
        return f"−{-value}"
    return "0"


@register.filter
def percent(value) -> str:
    """A share for display, rounded to a whole percent."""
    return f"{round(float(value or 0))}%"


@register.filter
def css_percent(value) -> str:
    """A share as a CSS width with a dot decimal separator, whatever the locale."""
    return f"{float(value or 0):.2f}%"
