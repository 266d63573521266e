"""Browser tests: Debian's chromium driven by Playwright against pytest-django's live server.

Playwright's own browser download is not used: the tests launch /usr/bin/chromium. Without
it they are skipped on a laptop and fail under CI, where a missing browser is a broken image.
"""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test's thread; Django refuses ORM calls
# from a thread with a running loop unless told this is deliberate.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Every test in tests/browser is a browser test, whatever its module says."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{CHROMIUM} is missing: chromium is required under CI for the browser tests "
                "(apt-get install chromium)."
            )
        pytest.skip(f"Debian's chromium is not installed: apt-get install chromium ({CHROMIUM})")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium_browser, live_server):
    context = chromium_browser.new_context(base_url=live_server.url)
    page = context.new_page()
    try:
        yield page
    finally:
        page.close()
        context.close()
