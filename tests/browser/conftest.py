"""Browser tests: Debian's Chromium, driven by Playwright, against pytest-django's live server.

Nothing is mocked: the live server runs the real middleware (CSP included), templates, htmx and
workspace.js, on the real PostgreSQL test database. Every page is kept off the network: requests
to any host but the live server are aborted and recorded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.urls import get_resolver
from playwright.sync_api import Page, Request, Route, ViewportSize, expect

from tests.browser import workspace_nav

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
PASSWORD = "correct horse battery staple"
VIEWPORT: ViewportSize = {"width": 1280, "height": 720}
# Assertions wait up to 15 s for the page to get there (Playwright's default is 5 s): on a busy
# 2-core machine an htmx swap can take longer than that, which is slowness, not a failure.
expect.set_options(timeout=15_000)

# Reported through a binding rather than kept in `window`, so violations survive navigations.
# Init scripts run before the page's own scripts and are not subject to its CSP.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__reportCspViolation({
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    sample: event.sample,
    source: event.sourceFile,
    line: event.lineNumber,
    page: document.location.pathname,
  });
}, true);
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Chromium (/usr/bin/chromium) against the live server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"Chromium is not installed at {CHROMIUM}; `make system-deps` installs it")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def _django_orm_beside_playwright() -> Iterator[None]:
    """Let test code use the ORM while Playwright runs.

    Playwright's sync API marks its asyncio loop as running in the main thread from start to
    stop, and Django refuses ORM calls from a thread with a running loop. The calls are in fact
    synchronous, so the guard is lifted for exactly as long as Playwright runs (the session).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="session")
def playwright(_django_orm_beside_playwright, playwright):  # type: ignore[no-untyped-def]
    return playwright


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    # Debian's Chromium: `playwright install` downloads browsers, which is neither wanted nor possible here.
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(live_server) -> str:  # type: ignore[no-untyped-def]
    """Pages are opened by path (`page.goto("/accounts/login/")`) on the live server.

    The URLconf is imported before the first page is opened (as `config.wsgi` does for
    gunicorn): the model pages bring in torch, which takes longer than a page load's timeout on a
    busy machine.
    """
    _ = get_resolver().url_patterns
    return live_server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": VIEWPORT}


@dataclass
class PageWatch:
    """What a page did that a test may want to assert never happened."""

    blocked_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    csp_violations: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def watch(page: Page) -> PageWatch:
    """Keep `page` on this machine and record its requests, dialogs and CSP violations."""
    seen = PageWatch()

    def only_local(route: Route, request: Request) -> None:
        if (urlsplit(request.url).hostname or "") in LOCAL_HOSTS or request.url.startswith("data:"):
            route.continue_()
        else:
            seen.blocked_requests.append(request.url)
            route.abort("blockedbyclient")

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.route("**/*", only_local)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("dialog", on_dialog)
    page.expose_function("__reportCspViolation", lambda violation: seen.csp_violations.append(violation))
    page.add_init_script(REPORT_CSP_VIOLATIONS)
    page.set_default_timeout(10_000)
    return seen


@pytest.fixture
def screenshot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], None]:
    """`screenshot("step")` saves test-artifacts/browser/<test>-<nn>-<step>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = request.node.originalname
    for stale in ARTIFACTS.glob(f"{prefix}-*.png"):
        stale.unlink()
    counter = itertools.count(1)

    def take(step: str) -> None:
        page.screenshot(path=ARTIFACTS / f"{prefix}-{next(counter):02d}-{step}.png", full_page=False)

    return take


@pytest.fixture
def reviewer(transactional_db) -> User:  # type: ignore[no-untyped-def]
    return User.objects.create_user(username="rev-browser", password=PASSWORD)


@pytest.fixture
def log_in(page: Page) -> Callable[[User], None]:
    """Log in through the real login form, typing like a person (the username field has autofocus)."""

    def type_credentials(user: User) -> None:
        page.goto("/accounts/login/")
        expect(page.get_by_label("Username")).to_be_focused()
        page.keyboard.type(user.username)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Queues")).to_be_visible()

    return type_credentials


@pytest.fixture
def review_queue(queue, policy, reviewer: User):  # type: ignore[no-untyped-def]
    """The shared harassment queue and policy (labels violating / not_violating), the reviewer a member."""
    queue.members.add(reviewer)
    return queue


@pytest.fixture
def start_reviewing(page: Page) -> Callable[[Any], None]:
    """Open a queue's page and press its Start reviewing button, as a reviewer does: a GET of the
    page claims nothing, the button POSTs the claim. Waits until an item is shown."""

    return lambda queue: workspace_nav.start_reviewing(page, queue.pk)
