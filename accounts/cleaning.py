"""Field cleaners for incoming rows: one per kind of value, each raising ValueError with a
message a person can act on. The REST API and the CSV importer both go through these."""

import functools
import json
import re
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
