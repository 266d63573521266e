from nps_platform.roles import NAVIGATION, can
from nps_platform.settings_tabs import settings_tabs


def _namespaces(area: str, url_name: str) -> set[str]:
    """The URL namespaces whose pages belong to a navigation item."""
    namespaces = {url_name.split(":")[0]}
    if area == "settings":
        namespaces |= {tab_url.split(":")[0] for _, _, tab_url in settings_tabs()}
    return namespaces


def shell(request):
    """The page shell's navigation, filtered by the member's role, and the org switcher."""
    membership = getattr(request, "membership", None)
    role = membership.role if membership else None
    match = getattr(request, "resolver_match", None)
    namespace = match.namespace if match else ""
    navigation = [
        {
            "area": area,
            "label": label,
            "url_name": url_name,
            "active": namespace in _namespaces(area, url_name),
        }
        for area, label, url_name in NAVIGATION
        if role and can(role, area)
    ]
    return {
        "navigation": navigation,
        "current_organization": getattr(request, "organization", None) if membership else None,
        "current_membership": membership,
        "memberships": getattr(request, "memberships", []),
        "settings_tabs": settings_tabs() if role and can(role, "settings") else [],
    }
