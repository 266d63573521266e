"""Formatting for account pages: money, tenure, health and score badges, sparklines."""

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import now

register = template.Library()

CURRENCY_SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "CN¥",
    "INR": "₹",
    "KRW": "₩",
    "BRL": "R$",
    "AUD": "A$",
    "CAD": "CA$",
    "NZD": "NZ$",
    "MXN": "MX$",
    "ILS": "₪",
}


@register.filter
def money(value, currency="USD") -> str:
    """An amount with the organization's currency: "$120,000", "€1,250.50", "9,000 CHF"."""
    if value in (None, ""):
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    code = (currency or "USD").upper()
    places = 0 if amount == amount.to_integral_value() else 2
    text = f"{abs(amount):,.{places}f}"
    sign = "−" if amount < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


def _months_between(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    if end.day < start.day:
        months -= 1
    return months


@register.filter
def tenure(signed_up_on, today=None) -> str:
    """How long a customer has been one: "2 y 3 mo", "5 mo", "12 d"."""
    if signed_up_on is None:
        return "—"
    if isinstance(signed_up_on, datetime):
        signed_up_on = signed_up_on.date()
    today = today or now().date()
    months = _months_between(signed_up_on, today)
    if months <= 0:
        days = max((today - signed_up_on).days, 0)
        return f"{days} d"
    years, months = divmod(months, 12)
    if years and months:
        return f"{years} y {months} mo"
    return f"{years} y" if years else f"{months} mo"


@register.filter
def tenure_words(signed_up_on, today=None) -> str:
    """The same, spelled out for screen readers: "2 years 3 months"."""
    short = tenure(signed_up_on, today)
    if short == "—":
        return "unknown"
    words = []
    parts = short.split()
    for number, unit in zip(parts[::2], parts[1::2], strict=True):
        name = {"y": "year", "mo": "month", "d": "day"}[unit]
        words.append(f"{number} {name}{'' if number == '1' else 's'}")
    return " ".join(words)


HEALTH_BANDS = [(70, "healthy", "Healthy"), (40, "watch", "Watch"), (0, "at-risk", "At risk")]


@register.simple_tag
def health_badge(score):
    """The health score in a badge coloured by band; words for those who cannot see colour."""
    if score is None:
        return mark_safe('<span class="badge health-unknown">Unknown</span>')
    for floor, css, label in HEALTH_BANDS:
        if score >= floor:
            return format_html(
                '<span class="badge health-{}" title="{}">{}<span class="visually-hidden">'
                " out of 100, {}</span></span>",
                css,
                label,
                score,
                label.lower(),
            )
    return ""


def score_category(score) -> str:
    if score is None:
        return ""
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


@register.simple_tag
def score_badge(score):
    """An NPS score: red detractor (0–6), amber passive (7–8), green promoter (9–10);
    0–3 is also marked as the danger zone."""
    if score is None:
        return mark_safe('<span class="subtle" title="No answer yet">—</span>')
    category = score_category(score)
    danger = score <= 3
    label = category.capitalize() + (", danger zone" if danger else "")
    return format_html(
        '<span class="badge score score-{}{}" title="{}">{}{}'
        '<span class="visually-hidden"> ({})</span></span>',
        category,
        " score-danger" if danger else "",
        label,
        mark_safe('<span aria-hidden="true">⚠ </span>') if danger else "",
        score,
        label.lower(),
    )


@register.simple_tag
def sparkline(series, width=240, height=56, label="Monthly average active users"):
    """An inline SVG line of (month, value or None) points; gaps where a month has no data.
    Its accessible name lists every value, so the chart is never the only way to read it."""
    points = [(month, value) for month, value in series]
    values = [value for _, value in points if value is not None]
    if not values:
        return ""
    pad = 4
    top, bottom = max(values), min(0, min(values))
    span = (top - bottom) or 1
    step = (width - 2 * pad) / max(len(points) - 1, 1)

    def xy(index, value):
        x = pad + index * step
        y = height - pad - (value - bottom) / span * (height - 2 * pad)
        return round(x, 1), round(y, 1)

    runs, run = [], []
    for index, (_, value) in enumerate(points):
        if value is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append(xy(index, value))
    if run:
        runs.append(run)
    lines = format_html_join(
        "",
        '<polyline class="spark-line" points="{}" />',
        ((" ".join(f"{x},{y}" for x, y in r),) for r in runs if len(r) > 1),
    )
    areas = format_html_join(
        "",
        '<polygon class="spark-area" points="{}" />',
        (
            (
                " ".join(
                    [f"{r[0][0]},{height - pad}"]
                    + [f"{x},{y}" for x, y in r]
                    + [f"{r[-1][0]},{height - pad}"]
                ),
            )
            for r in runs
            if len(r) > 1
        ),
    )
    dots = format_html_join(
        "",
        '<circle class="spark-point" cx="{}" cy="{}" r="2" />',
        (r[0] for r in runs if len(r) == 1),
    )
    last_index = max(i for i, (_, value) in enumerate(points) if value is not None)
    last_x, last_y = xy(last_index, points[last_index][1])
    described = ", ".join(
        f"{month:%b %Y} {'no data' if value is None else _number(value)}" for month, value in points
    )
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        'aria-label="{label}: {described}" preserveAspectRatio="none">'
        "<title>{label}</title>{areas}{lines}{dots}"
        '<circle class="spark-dot" cx="{x}" cy="{y}" r="3" /></svg>',
        w=width,
        h=height,
        label=label,
        described=described,
        areas=areas,
        lines=lines,
        dots=dots,
        x=last_x,
        y=last_y,
    )


def _number(value) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


@register.filter
def number(value) -> str:
    if value is None:
        return "—"
    return _number(float(value))


@register.filter
def days_until(day, today=None) -> int | None:
    """Days from today to a date: negative when it has passed."""
    if day is None:
        return None
    if isinstance(day, datetime):
        day = day.date()
    return (day - (today or now().date())).days


@register.filter
def days_words(days) -> str:
    """A day count relative to today: "in 12 days", "today", "3 days ago"."""
    if days is None:
        return ""
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if days == -1:
        return "yesterday"
    if days > 0:
        return f"in {days} days"
    return f"{-days} days ago"
