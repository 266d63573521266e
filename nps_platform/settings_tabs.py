"""The tabs of the Settings page. The platform's own come first; each domain app adds its
tabs from its AppConfig.ready(), so the platform never imports a domain app."""

_tabs: list[tuple[str, str, str]] = [
    ("organization", "Organization", "settings:organization"),
    ("team", "Team", "settings:team"),
    ("api_keys", "API keys", "settings:api_keys"),
]


def register_settings_tab(key: str, label: str, url_name: str) -> None:
    if all(existing != key for existing, _, _ in _tabs):
        _tabs.append((key, label, url_name))


def settings_tabs() -> list[tuple[str, str, str]]:
    return list(_tabs)
