"""The container image holds every app the settings install."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def our_apps() -> set[str]:
    return {
        name.split(".")[0]
        for name in settings.INSTALLED_APPS
        if (ROOT / name.split(".")[0] / "__init__.py").exists()
    }


def test_it_copies_every_installed_app_into_the_image():
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert our_apps() - copied == set()


def test_it_packages_every_installed_app():
    pyproject = (ROOT / "pyproject.toml").read_text()
    included = set(re.findall(r'"(\w+)\*"', pyproject))
    assert our_apps() - included == set()
