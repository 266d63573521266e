"""Checks of the ids a response points at in an app that depends on this one.

A response carries `survey_id` and `invitation_id`, plain ids into surveys/ (models.Response):
surveys/ depends on this app, so responses/ cannot look them up itself. Instead the app that
owns them registers one checker in its AppConfig.ready() (surveys/apps.py), and
services.responses_record asks it about the items that carry such ids, once per batch. Without
a checker (responses/ used without surveys/), the ids are saved as sent.

The checker is called as `checker(organization=…, references={index: Reference})`, inside the
organization's scope, with only the items that name a survey or an invitation, and answers a
`ReferencesChecked`. It reads each table once for the whole batch (an `__in` lookup on the ids
named), never once per item: a batch holds up to 1,000 items.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from nps_platform.models import Organization


@dataclass(frozen=True)
class Reference:
    """What one item names: its contact (found already), and a survey and/or an invitation."""

    contact_id: int
    survey_id: int | None
    invitation_id: int | None


@dataclass
class ReferencesChecked:
    """The checker's answer. `errors`: messages by field for each item that names something it
    must not (another organization's or no survey, an invitation sent to someone else…), by
    item index. `survey_ids`: the survey an item that names only its invitation answers."""

    errors: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    survey_ids: dict[int, int] = field(default_factory=dict)


Checker = Callable[..., ReferencesChecked]

_checker: Checker | None = None


def references_checker_register(checker: Checker) -> None:
    """Sets the checker. Once: the same function again is harmless (ready() may run twice in
    tests), another one is a mistake and raises."""
    global _checker
    if _checker is not None and _checker is not checker:
        raise RuntimeError(f"A references checker is registered already: {_checker!r}.")
    _checker = checker


def references_check(
    *, organization: Organization, items: dict[int, dict], contact_of: Callable[[int], int]
) -> dict[int, dict[str, list[str]]]:
    """Checks the survey_id and invitation_id of the batch's items (cleaned data by index;
    `contact_of(index)` gives the id of the contact an item names). Returns errors by field
    for the items that must not be saved, by index. An item that names only an invitation gets
    its survey_id set here, from the invitation. Costs nothing (no query) when no item names a
    survey or an invitation, or when no checker is registered."""
    if _checker is None:
        return {}
    references = {
        index: Reference(contact_of(index), data.get("survey_id"), data.get("invitation_id"))
        for index, data in items.items()
        if "survey_id" in data or "invitation_id" in data
    }
    if not references:
        return {}
    checked = _checker(organization=organization, references=references)
    for index, survey_id in checked.survey_ids.items():
        if index not in checked.errors:
            items[index]["survey_id"] = survey_id
    return checked.errors
