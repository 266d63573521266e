"""The role matrix, in one place: which role may use which part of the product.

Admins configure, CS managers work follow-ups, executives read dashboards. Pages and the
navigation both ask `can(role, area)`, so a menu never shows a page its reader cannot open.
"""

from nps_platform.models import Role

AREAS: dict[str, frozenset[str]] = {
    # area: roles allowed
    "queue": frozenset({Role.ADMIN, Role.CS_MANAGER}),
    "dashboard": frozenset({Role.ADMIN, Role.CS_MANAGER, Role.EXEC}),
    "responses": frozenset({Role.ADMIN, Role.CS_MANAGER, Role.EXEC}),
    "accounts": frozenset({Role.ADMIN, Role.CS_MANAGER}),
    # Defining segments and importing data change what everyone sees: admins only.
    "segments": frozenset({Role.ADMIN}),
    "imports": frozenset({Role.ADMIN}),
    "surveys": frozenset({Role.ADMIN}),
    "settings": frozenset({Role.ADMIN}),
}

# The navigation, in order: (area, label, URL name).
NAVIGATION: list[tuple[str, str, str]] = [
    ("queue", "Queue", "followups:queue"),
    ("dashboard", "Dashboard", "insights:dashboard"),
    ("responses", "Responses", "responses:explorer"),
    ("accounts", "Accounts", "accounts:list"),
    ("surveys", "Surveys", "surveys:list"),
    ("settings", "Settings", "settings:organization"),
]

# Where each role lands after signing in.
HOME_AREA = {Role.ADMIN: "dashboard", Role.CS_MANAGER: "queue", Role.EXEC: "dashboard"}


def can(role: str | None, area: str) -> bool:
    if area not in AREAS:
        raise KeyError(f"Unknown area {area!r}: add it to nps_platform.roles.AREAS")
    return role in AREAS[area]
