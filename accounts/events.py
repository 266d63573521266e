"""Events accounts/ sends, so apps that depend on it can join in without a back-import.

- `contact_erasing(organization, contact)`: sent inside the erasure's transaction, before the
  contact row is deleted. Receivers drop or anonymise what they hold about the person.
- `register_personal_data_exporter(section, fn)`: fn(organization=, contact=) returns what
  an app holds about a person; GET /api/v1/contacts/{id}/export includes it as `section`.
- `register_account_panel(fn)`: fn(organization=, account=) returns a dict with `title`,
  `template` and `context` for a panel on the account page (e.g. the NPS history).
"""

from django.dispatch import Signal

contact_erasing = Signal()

_exporters: list[tuple[str, object]] = []
_account_panels: list[object] = []


def register_personal_data_exporter(section: str, exporter) -> None:
    if all(existing != section for existing, _ in _exporters):
        _exporters.append((section, exporter))


def personal_data_exporters() -> list[tuple[str, object]]:
    return list(_exporters)


def register_account_panel(panel) -> None:
    if panel not in _account_panels:
        _account_panels.append(panel)


def account_panels() -> list[object]:
    return list(_account_panels)
