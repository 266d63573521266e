from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def duration_words(value) -> str:
    """A timedelta as people say it: "15 minutes", "1 hour", "45 seconds"."""
    if not isinstance(value, timedelta):
        return ""
    seconds = int(value.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            count = round(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "a moment"
