"""Segment rules, translated into database queries.

A rule is {"match": "all" | "any", "conditions": [{"field": …, "op": …, "value": …}]}.
Account fields filter accounts; `contact.*` fields filter contacts. For a list of accounts,
contact conditions mean "has a contact that matches them all (or any)"; for a list of
contacts, account conditions apply to the contact's account. Nothing is loaded into Python.
"""

import math
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q
from django.utils.timezone import now

from accounts.models import LifecycleStage, SuppressionReason

TEXT_OPS = {"eq", "neq", "in", "not_in", "contains", "is_empty", "is_not_empty"}
NUMBER_OPS = {"eq", "neq", "gt", "gte", "lt", "lte", "is_empty", "is_not_empty"}
DATE_OPS = {"before", "after", "within_next_days", "within_last_days", "is_empty", "is_not_empty"}
BOOL_OPS = {"is_true", "is_false"}

# field: (type, model lookup). Account lookups are relative to Account.
ACCOUNT_FIELDS = {
    "name": ("text", "name"),
    "domain": ("text", "domain"),
    "plan": ("text", "plan"),
    "industry": ("text", "industry"),
    "size": ("text", "size"),
    "lifecycle_stage": ("choice", "lifecycle_stage"),
    "arr": ("number", "arr"),
    "health_score": ("number", "health_score"),
    "last_score": ("number", "last_score"),
    "tenure_days": ("tenure", "signed_up_on"),
    "renewal_date": ("date", "renewal_date"),
    "signed_up_on": ("date", "signed_up_on"),
    "owner": ("text", "owner__email"),
    "churned": ("bool", "churned_at"),
}
CONTACT_FIELDS = {
    "contact.email": ("text", "email"),
    "contact.title": ("text", "title"),
    "contact.locale": ("text", "locale"),
    "contact.timezone": ("text", "timezone"),
    "contact.suppressed": ("bool", "suppressed_reason"),
}
OPS_BY_TYPE = {
    "text": TEXT_OPS,
    "choice": TEXT_OPS,
    "number": NUMBER_OPS,
    "tenure": {"gt", "gte", "lt", "lte"},
    "date": DATE_OPS,
    "bool": BOOL_OPS,
    "property": TEXT_OPS,
}
OP_LABELS = {
    "eq": "is",
    "neq": "is not",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "is_empty": "is empty",
    "is_not_empty": "is set",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "before": "before",
    "after": "after",
    "within_next_days": "within the next … days",
    "within_last_days": "within the last … days",
    "is_true": "yes",
    "is_false": "no",
}
CHOICES = {"lifecycle_stage": LifecycleStage, "contact.suppressed_reason": SuppressionReason}
INTEGER_LOOKUPS = {"health_score", "last_score"}


def field_type(name: str) -> tuple[str, str, bool]:
    """(type, lookup, is_contact_field) for a rule field, or ValidationError."""
    if not isinstance(name, str) or not name:
        raise ValidationError("Choose a field.")
    if name in ACCOUNT_FIELDS:
        kind, lookup = ACCOUNT_FIELDS[name]
        return kind, lookup, False
    if name in CONTACT_FIELDS:
        kind, lookup = CONTACT_FIELDS[name]
        return kind, lookup, True
    for prefix, is_contact in (("contact.properties.", True), ("properties.", False)):
        if name.startswith(prefix) and len(name) > len(prefix):
            key = name.removeprefix(prefix)
            # "__" would chain a lookup, and an all-digit key would index a JSON array.
            if (
                not key.replace("_", "").replace("-", "").isalnum()
                or not key.isascii()
                or "__" in key
                or key.isdigit()
            ):
                raise ValidationError(
                    f"“{key}” is not a property name (letters, digits, _ or -, "
                    "not only digits, no double underscore)."
                )
            return "property", f"properties__{key}", is_contact
    raise ValidationError(f"Unknown field “{name}”.")


def _as_list(value) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


MAX_NUMBER = Decimal(10) ** 15
MAX_DAYS = 36_500  # a century: more would overflow date arithmetic


def _number(value, name) -> Decimal:
    raw = "" if value is None or isinstance(value, bool) else str(value).replace(",", "").strip()
    if not raw:
        raise ValidationError(f"{name}: give a number.")
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise ValidationError(f"{name}: “{value}” is not a number.") from None
    if not number.is_finite():
        raise ValidationError(f"{name}: “{value}” is not a number.")
    if abs(number) >= MAX_NUMBER:
        raise ValidationError(f"{name}: {value} is too large.")
    return number


def _days(value, name) -> Decimal:
    number = _number(value, name)
    if number < 0 or number != number.to_integral_value():
        raise ValidationError(f"{name}: give a whole number of days, 0 or more.")
    if number > MAX_DAYS:
        raise ValidationError(f"{name}: use at most {MAX_DAYS} days.")
    return number


def _plain(number: Decimal) -> str:
    """50000 rather than 5E+4; 0.5 stays 0.5."""
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _stage(value: str) -> str | None:
    """A lifecycle stage by value or label, case-insensitively."""
    wanted = value.strip().lower()
    for stage, label in LifecycleStage.choices:
        if wanted in {stage, str(label).lower(), stage.replace("_", " ")}:
            return stage
    return None


def validate_rules(rules) -> dict:
    """The rules in canonical form, or a ValidationError saying which condition is wrong."""
    if not isinstance(rules, dict):
        raise ValidationError("Rules must be an object with match and conditions.")
    match = rules.get("match", "all")
    if not isinstance(match, str) or match not in {"all", "any"}:
        raise ValidationError("match must be “all” or “any”.")
    conditions = rules.get("conditions", [])
    if not isinstance(conditions, list):
        raise ValidationError("conditions must be a list.")
    clean = []
    for number, condition in enumerate(conditions, start=1):
        if not isinstance(condition, dict):
            raise ValidationError(f"Condition {number} must be an object.")
        name, op, value = (
            condition.get("field", ""),
            condition.get("op", ""),
            condition.get("value"),
        )
        try:
            kind, _, _ = field_type(name)
        except ValidationError as exc:
            raise ValidationError(f"Condition {number}: {exc.messages[0]}") from None
        if not isinstance(op, str) or op not in OPS_BY_TYPE[kind]:
            allowed = ", ".join(sorted(OPS_BY_TYPE[kind]))
            raise ValidationError(f"Condition {number}: {name} takes one of {allowed}, not “{op}”.")
        if op in {"is_empty", "is_not_empty", "is_true", "is_false"}:
            value = None
        elif op in {"in", "not_in"}:
            value = _as_list(value if value not in (None, "") else "")
            if not value:
                raise ValidationError(f"Condition {number}: list at least one value.")
        elif kind == "tenure" or op in {"within_next_days", "within_last_days"}:
            value = _plain(_days(value, f"Condition {number}"))
        elif kind == "number":
            value = _plain(_number(value, f"Condition {number}"))
        elif kind == "date":
            from accounts.cleaning import a_date

            try:
                value = a_date()(value).isoformat()
            except ValueError as exc:
                raise ValidationError(f"Condition {number}: {exc}") from None
        else:
            value = str(value if value is not None else "").strip()
            if not value:
                raise ValidationError(f"Condition {number}: give a value.")
        if kind == "choice" and value is not None and op != "contains":
            values = value if isinstance(value, list) else [value]
            stages = [_stage(v) for v in values]
            wrong = [v for v, stage in zip(values, stages, strict=True) if stage is None]
            if wrong:
                raise ValidationError(
                    f"Condition {number}: {', '.join(wrong)} is not a lifecycle stage "
                    f"({', '.join(LifecycleStage.values)})."
                )
            value = stages if isinstance(value, list) else stages[0]
        clean.append({"field": name, "op": op, "value": value})
    return {"match": match, "conditions": clean}


def _condition_q(condition: dict, prefix: str) -> Q:
    kind, lookup, _ = field_type(condition["field"])
    op, value = condition["op"], condition["value"]
    path = prefix + lookup
    text_like = kind in {"text", "choice", "property"}
    if kind == "bool":
        present = Q(**{f"{path}__isnull": False}) & ~Q(**{path: ""})
        if lookup.endswith("_at"):
            present = Q(**{f"{path}__isnull": False})
        return present if op == "is_true" else ~present
    if op == "is_empty":
        empty = Q(**{f"{path}__isnull": True})
        return empty | Q(**{path: ""}) if text_like else empty
    if op == "is_not_empty":
        present = Q(**{f"{path}__isnull": False})
        return present & ~Q(**{path: ""}) if text_like else present
    if kind == "tenure":
        cutoff = now().date() - timedelta(days=int(Decimal(value)))
        # Longer tenure means an earlier sign-up date.
        flipped = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte"}[op]
        return Q(**{f"{path}__{flipped}": cutoff})
    if kind == "date":
        today = now().date()
        if op == "before":
            return Q(**{f"{path}__lt": value})
        if op == "after":
            return Q(**{f"{path}__gt": value})
        days = timedelta(days=int(Decimal(value)))
        if op == "within_next_days":
            return Q(**{f"{path}__gte": today, f"{path}__lte": today + days})
        return Q(**{f"{path}__gte": today - days, f"{path}__lte": today})
    if kind == "number":
        number = Decimal(value)
        if lookup in INTEGER_LOOKUPS and number != number.to_integral_value():
            # Scores are whole numbers: ≥ 6.5 means ≥ 7, < 6.5 means ≤ 6, = 6.5 never.
            if op in {"gt", "gte"}:
                return Q(**{f"{path}__gte": math.ceil(number)})
            if op in {"lt", "lte"}:
                return Q(**{f"{path}__lte": math.floor(number)})
            nothing = Q(pk__in=[])
            return nothing if op == "eq" else ~nothing
        if op == "eq":
            return Q(**{path: number})
        if op == "neq":
            return ~Q(**{path: number}) | Q(**{f"{path}__isnull": True})
        return Q(**{f"{path}__{op}": number})
    # text, choice, property: case-insensitive.
    if op == "eq":
        return Q(**{f"{path}__iexact": value})
    if op == "neq":
        return ~Q(**{f"{path}__iexact": value}) | Q(**{f"{path}__isnull": True})
    if op == "contains":
        return Q(**{f"{path}__icontains": value})
    any_of = Q()
    for item in value:
        any_of |= Q(**{f"{path}__iexact": item})
    if op == "in":
        return any_of
    return ~any_of | Q(**{f"{path}__isnull": True})


def _combine(qs: list[Q], match: str) -> Q | None:
    if not qs:
        return None
    combined = qs[0]
    for q in qs[1:]:
        combined = combined & q if match == "all" else combined | q
    return combined


def _split(rules: dict):
    account_conditions, contact_conditions = [], []
    for condition in rules.get("conditions", []):
        _, _, is_contact = field_type(condition["field"])
        (contact_conditions if is_contact else account_conditions).append(condition)
    return account_conditions, contact_conditions


def accounts_q(rules: dict) -> Q:
    """A filter on Account for the rules."""
    from accounts.models import Contact

    match = rules.get("match", "all")
    account_conditions, contact_conditions = _split(rules)
    parts = [_condition_q(c, "") for c in account_conditions]
    contact_q = _combine([_condition_q(c, "") for c in contact_conditions], match)
    if contact_q is not None:
        parts.append(Q(Exists(Contact.objects.filter(contact_q, account=OuterRef("pk")))))
    return _combine(parts, match) or Q()


def contacts_q(rules: dict) -> Q:
    """A filter on Contact for the rules: account conditions apply to its account."""
    match = rules.get("match", "all")
    account_conditions, contact_conditions = _split(rules)
    parts = [_condition_q(c, "account__") for c in account_conditions]
    parts += [_condition_q(c, "") for c in contact_conditions]
    return _combine(parts, match) or Q()


def describe(rules: dict) -> str:
    """The rules in words, for lists: "plan is one of enterprise, growth and arr ≥ 50000"."""
    words = []
    for condition in (rules or {}).get("conditions", []):
        field, op, value = (
            condition.get("field", ""),
            condition.get("op", ""),
            condition.get("value"),
        )
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        value = "" if value is None else str(value)
        if op in {"within_next_days", "within_last_days"}:
            span = "next" if op == "within_next_days" else "last"
            words.append(f"{field} within the {span} {value} days")
            continue
        if op in {"is_true", "is_false"}:
            words.append(field if op == "is_true" else f"not {field}")
            continue
        label = OP_LABELS.get(op, op)
        if field == "tenure_days" and value:
            value = f"{value} days"
        words.append(" ".join(p for p in (field, label, value) if p))
    joiner = " and " if (rules or {}).get("match", "all") == "all" else " or "
    return joiner.join(words) or "every account"
