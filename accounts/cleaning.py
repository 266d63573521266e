"""Field cleaners for incoming rows: one per kind of value, each raising ValueError with a
message a person can act on. The REST API and the CSV importer both go through these."""

import functools
import json
import re
import sys
import zoneinfo
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import now

_email_validator = EmailValidator()
_url_validator = URLValidator(schemes=["http", "https"])
TIMEZONES = zoneinfo.available_timezones()
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
NOT_UTF8 = "\udc80"  # what surrogateescape leaves for bytes that are not UTF-8


class Blank:
    """Marks an empty value: clear the field (API) or leave it as it is (CSV)."""


BLANK = Blank()


def is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _as_text(value) -> str:
    if type(value) is str:  # the usual case, first
        text = value.strip()
    elif isinstance(value, bool | dict | list):
        raise ValueError("must be text.")
    else:
        text = str(value).strip()
    if "\x00" in text:
        raise ValueError("contains a NUL character, which text cannot hold.")
    if not text.isascii() and _NOT_UTF8.search(text):
        raise ValueError("contains bytes that are not UTF-8; save the file as UTF-8 (CSV UTF-8).")
    return text


def text(max_length: int, *, lower: bool = False):
    def clean(value):
        result = _as_text(value)
        if len(result) > max_length:
            raise ValueError(f"is {len(result)} characters long; the most is {max_length}.")
        return result.lower() if lower else result

    clean.column = functools.partial(_text_column, max_length=max_length, lower=lower)
    return clean


# Django's lazy pattern, compiled once (each use of the lazy one goes through a proxy).
_EMAIL_USER = re.compile(EmailValidator.user_regex.pattern, EmailValidator.user_regex.flags)


@functools.lru_cache(maxsize=4096)
def _is_email_domain(domain: str) -> bool:
    """EmailValidator's domain check, remembered: a batch has few domains, and the check is
    most of what validating an email costs."""
    return domain in _email_validator.domain_allowlist or _email_validator.validate_domain_part(
        domain
    )


def email(value) -> str:
    """Valid as Django's EmailValidator says: its checks, with the domain's result cached."""
    result = _as_text(value).lower()
    if (
        "@" not in result
        or len(result) > 320
        or not _EMAIL_USER.match(result.rsplit("@", 1)[0])
        or not _is_email_domain(result.rsplit("@", 1)[1])
    ):
        raise ValueError(f"“{result}” is not a valid email address.")
    return result


# An address as email() takes it, in the common form (a dot-atom of ASCII before the @):
# matched on every line of a column's text at once, capturing the domain, or nothing for a
# line in any other form (which email() itself then checks).
_PLAIN_EMAILS = re.compile(
    r"^(?:[-!#$%&'*+/=?^_`{}|~0-9a-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*@([^@\n]+)|.*)$",
    re.MULTILINE,
)


def _email_column(values: list[str]) -> tuple[list[str], set[int]]:
    """email() over a column of cells, none of them blank: the common form is checked on the
    whole column's text at once, and each domain once."""
    results, refused = _text_column(values, max_length=sys.maxsize, lower=True)
    text = "\n".join(results)
    domains = _PLAIN_EMAILS.findall(text) if text.count("\n") == len(results) - 1 else []
    if len(domains) != len(results):  # a line break in a cell: one by one
        domains = [""] * len(results)
    if max(map(len, results)) > 320:  # measured lowercased, as email() does
        refused.update(n for n, value in enumerate(results) if len(value) > 320)
    wrong = {domain for domain in set(domains) if domain and not _is_email_domain(domain)}
    if not wrong and "" not in domains:
        return results, refused
    for n, domain in enumerate(domains):
        if domain in wrong:
            refused.add(n)
        elif not domain and n not in refused:  # another form: email() decides
            try:
                email(values[n])
            except ValueError:
                refused.add(n)
    return results, refused


email.column = _email_column


def url(value) -> str:
    result = _as_text(value)
    try:
        _url_validator(result)
    except ValidationError:
        raise ValueError(f"“{result}” is not a valid http(s) URL.") from None
    return result


def domain(value) -> str:
    result = _as_text(value).lower()
    result = re.sub(r"^https?://", "", result).split("/")[0].removeprefix("www.")
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", result):
        raise ValueError(f"“{value}” is not a domain name such as example.com.")
    return result


def decimal(*, minimum: Decimal | None = None):
    def clean(value):
        if isinstance(value, bool):
            raise ValueError("must be a number.")
        raw = _as_text(value).replace(",", "").replace("_", "")
        raw = re.sub(r"^[$€£¥]\s*", "", raw)
        try:
            result = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"“{value}” is not a number.") from None
        if not result.is_finite():
            raise ValueError(f"“{value}” is not a number.")
        if minimum is not None and result < minimum:
            raise ValueError(f"must be at least {minimum}.")
        if abs(result) >= Decimal("1e12"):
            raise ValueError("is too large.")
        return result.quantize(Decimal("0.01"))

    return clean


def integer(*, minimum: int | None = None, maximum: int | None = None):
    def clean(value):
        if isinstance(value, bool):
            raise ValueError("must be a whole number.")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        raw = _as_text(value)
        try:
            result = int(Decimal(raw)) if re.fullmatch(r"-?\d+(\.0+)?", raw) else int(raw)
        except (ValueError, InvalidOperation):
            raise ValueError(f"“{value}” is not a whole number.") from None
        if minimum is not None and result < minimum:
            raise ValueError(f"must be at least {minimum}.")
        if maximum is not None and result > maximum:
            raise ValueError(f"must be at most {maximum}.")
        return result

    return clean


def a_date(*, not_future: bool = False):
    def clean(value):
        raw = _as_text(value)
        try:
            result = parse_date(raw[:10]) if len(raw) >= 10 else None
        except ValueError:
            result = None
        if result is None:
            raise ValueError(f"“{value}” is not a date; use YYYY-MM-DD.")
        if not_future and result > now().date():
            raise ValueError(f"{result.isoformat()} is in the future.")
        return result

    return clean


def a_datetime(value) -> datetime:
    raw = _as_text(value)
    try:
        result = parse_datetime(raw)
        if result is None and (day := parse_date(raw)) is not None:
            result = datetime.combine(day, time.min)
    except ValueError:
        result = None
    if result is None:
        raise ValueError(f"“{value}” is not a date and time; use ISO 8601, e.g. 2026-03-01T09:30Z.")
    if result.tzinfo is None:
        result = result.replace(tzinfo=UTC)
    return result


def choice(choices):
    values = {str(v): str(v) for v in choices.values}
    labels = {str(label).lower(): str(v) for v, label in choices.choices}

    def clean(value):
        raw = _as_text(value).lower().replace(" ", "_")
        result = values.get(raw) or labels.get(_as_text(value).lower())
        if result is None:
            allowed = ", ".join(values)
            raise ValueError(f"“{value}” is not one of: {allowed}.")
        return result

    return clean


def timezone_name(value) -> str:
    raw = _as_text(value)
    if raw not in TIMEZONES:
        raise ValueError(f"“{raw}” is not a time zone name such as Europe/Berlin.")
    return raw


def locale(value) -> str:
    raw = _as_text(value)
    if not _LOCALE.fullmatch(raw):
        raise ValueError(f"“{raw}” is not a locale such as en or de-DE.")
    return raw.replace("_", "-")


def json_object(value) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ValueError("must be an object of names and values.")
    if "\\u0000" in json.dumps(value):
        raise ValueError("contains a NUL character, which text cannot hold.")
    return value


def is_future(day: date) -> bool:
    return day > now().date()


# --- Whole columns ---------------------------------------------------------------------------
#
# A file import cleans its rows a column at a time: the checks of the common cleaners run
# over a whole column in C-level loops (str methods mapped over it, one regex or join for all
# of it), and any other cleaner runs once per distinct value (a file repeats its titles,
# locales and accounts row after row). The values are exactly those of the cleaner called
# cell by cell; a refused cell is only marked, and the caller cleans its row alone to get the
# messages.


def clean_column(clean, values: list) -> tuple[list, set[int]]:
    """`clean` applied to each of a column's cells: (each cell's cleaned value, None where the
    cell is blank (is_blank); the positions of the cells it refuses)."""
    if not values:
        return [], set()
    if set(map(type, values)) != {str}:  # not all read from a file: cleaned one by one
        return _clean_each(clean, values)
    stripped = list(map(str.strip, values))
    if "" not in stripped:
        return getattr(clean, "column", functools.partial(_distinct_column, clean))(values)
    given = [n for n, text in enumerate(stripped) if text]
    results: list = [None] * len(values)
    if not given:
        return results, set()
    cleaned, refused = clean_column(clean, [values[n] for n in given])
    for n, value in zip(given, cleaned, strict=True):
        results[n] = value
    return results, {given[n] for n in refused}


def _clean_each(clean, values: list) -> tuple[list, set[int]]:
    results: list = [None] * len(values)
    refused = set()
    for n, value in enumerate(values):
        if is_blank(value):
            continue
        try:
            results[n] = clean(value)
        except ValueError:
            refused.add(n)
    return results, refused


def _distinct_column(clean, values: list[str]) -> tuple[list, set[int]]:
    """Any cleaner over cells none of which is blank, once per distinct value."""
    cleaned, refused_values = {}, set()
    for value in dict.fromkeys(values):
        try:
            cleaned[value] = clean(value)
        except ValueError:
            refused_values.add(value)
    results = list(map(cleaned.get, values))
    refused = {n for n, value in enumerate(values) if value in refused_values}
    return results, refused


def _text_column(values: list[str], *, max_length: int, lower: bool) -> tuple[list, set[int]]:
    """text(max_length, lower=lower) over cells none of which is blank."""
    results = list(map(str.strip, values))
    joined = "".join(results)
    refused = set()
    if "\x00" in joined or (not joined.isascii() and _NOT_UTF8.search(joined)):
        for n, value in enumerate(results):
            if "\x00" in value or _NOT_UTF8.search(value):
                refused.add(n)
    if max(map(len, results)) > max_length:
        refused.update(n for n, value in enumerate(results) if len(value) > max_length)
    if lower:
        results = list(map(str.lower, results))
    return results, refused
