"""Browser tests: Debian's chromium driven by Playwright against pytest-django's live server.

Playwright's own browser download is not used: the tests launch /usr/bin/chromium. Without
it they are skipped on a laptop and fail under CI, where a missing browser is a broken image.

Playwright's sync API keeps an event loop running in the test's thread for as long as it is
started, and Django refuses ORM calls from a thread with a running loop unless
DJANGO_ALLOW_ASYNC_UNSAFE is set. That variable is set only while the browser session is
alive, not for the whole pytest run: a process-wide setting would leak into every later test
and its subprocesses (`manage.py check --deploy` in tests/platform/test_deploy_check.py
fails with async.E001 when it inherits it). For the same reason the browser tests run last,
so the session-long Playwright loop never overlaps the other tests.
"""

import os
from pathlib import Path

import pytest

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
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


def _is_browser_test(item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(config, items):
    """Mark every test in tests/browser as `browser` and move those tests to the end of the
    run (keeping their order and the order of the others)."""
    browser_items = [item for item in items if _is_browser_test(item)]
    for item in browser_items:
        item.add_marker(pytest.mark.browser)
    if browser_items:
        others = [item for item in items if not _is_browser_test(item)]
        items[:] = others + browser_items


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

    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def page(chromium_browser, live_server):
    context = chromium_browser.new_context(base_url=live_server.url)
    page = context.new_page()
    try:
        yield page
    finally:
        page.close()
        context.close()
