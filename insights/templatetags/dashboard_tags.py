"""Formatting for the dashboard: NPS figures, changes, shares and durations.

NPS is shown in whole points ("+42", "−17") with a real minus sign; the CSV exports carry
the same figures to one decimal (insights.exports).
"""

import math

from django import template

register = template.Library()


def whole(value: float) -> int:
    """Rounded half away from zero, so +12.5 shows as +13 and −12.5 as −13."""
    return int(math.copysign(math.floor(abs(float(value)) + 0.5), float(value)))


@register.filter
def nps_figure(value) -> str:
    """ "+42", "0", "−17"; "—" without a value."""
    if value is None or value == "":
        return "—"
    number = whole(value)
    if number > 0:
        return f"+{number}"
    if number < 0:
        return f"−{-number}"
    return "0"


@register.filter
def share(value) -> str:
    """A fraction from 0 to 1 as a whole percent; "—" without a value."""
    if value is None or value == "":
        return "—"
    return f"{whole(float(value) * 100)}%"


@register.filter
def percent_of(count, total) -> str:
    if not total:
        return "—"
    return share(count / total)


@register.filter
def css_share(count, total) -> str:
    """count/total as a CSS width, with a dot decimal separator whatever the locale."""
    if not total:
        return "0%"
    return f"{100 * float(count) / float(total):.2f}%"


@register.filter
def duration(hours) -> str:
    """Hours as "45 min", "5.2 h" or "3.1 d"; "—" without a value."""
    if hours is None or hours == "":
        return "—"
    hours = float(hours)
    if hours < 1:
        return f"{whole(hours * 60)} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


@register.filter
def outcome_label(slug) -> str:
    """A follow-up outcome's label ("Saved"), or its slug spelled out."""
    from followups.models import Outcome

    try:
        return Outcome(slug).label
    except ValueError:
        return str(slug).replace("_", " ").capitalize()
