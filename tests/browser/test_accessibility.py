"""axe-core (vendored, tests/browser/vendor/axe-core/) on every page, for every role, in every theme.

Each role signs in through the login form and opens each of its pages on the seeded world
(tests/browser/pages_world.py: real content in every table and chart), in three themes: the
system's light scheme, the system's dark scheme (emulated `prefers-color-scheme`), and dark
chosen with the header's theme form while the system stays light. axe runs the WCAG 2.2 AA rule
set (wcag2a, wcag2aa, wcag21a, wcag21aa, wcag22aa) on the page as served, under its real CSP;
the test fails listing rule, impact, page and element for every serious or critical violation.
The anonymous login page and a reviewer's 403 page are checked the same way.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.axe import FAILING_IMPACTS, axe_violations
from tests.browser.conftest import PASSWORD
from tests.browser.pages_world import World, build_world

pytestmark = pytest.mark.browser

# (name, emulated prefers-color-scheme, theme chosen with the header form or None)
THEMES = [("light", "light", None), ("dark", "dark", None), ("chosen dark", "light", "dark")]
# Pages that draw after load: what shows they are ready.
READY = {"/api/docs/": ".opblock"}


@pytest.fixture
def world(transactional_db, settings) -> World:  # type: ignore[no-untyped-def]
    return build_world(settings)


def _log_in(page: Page, user: User) -> None:
    page.context.clear_cookies()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()


def _choose_theme(page: Page, chosen: str | None) -> None:
    """Choose the theme with the header's form (or go back to following the system)."""
    page.get_by_role("button", name=f"{(chosen or 'auto').capitalize()} theme").click()
    expected = chosen or None
    if expected:
        expect(page.locator("html")).to_have_attribute("data-theme", expected)
    else:
        expect(page.locator("html")).not_to_have_attribute("data-theme", "dark")


def _check(page: Page, path: str, label: str, found: list[str], tally: Counter[str]) -> None:
    tally["pages checked"] += 1
    response = page.goto(path)
    assert response is not None, path
    if path in READY:
        expect(page.locator(READY[path]).first).to_be_visible()
    page.locator("details").evaluate_all("all => all.forEach((d) => { d.open = true; })")
    for violation in axe_violations(page):
        tally[f"{violation['id']} ({violation['impact']})"] += violation["count"]
        if violation["impact"] in FAILING_IMPACTS:
            found.append(
                f"{label} {path}: {violation['id']} ({violation['impact']}, {violation['count']} element(s)): "
                f"{violation['help']} — {json.dumps(violation['targets'])}"
            )


def test_every_page_passes_axe_for_every_role_and_theme(page: Page, watch, world: World) -> None:
    found: list[str] = []
    tally: Counter[str] = Counter()
    for name, scheme, chosen in THEMES:
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        page.context.clear_cookies()
        if chosen is None:
            _check(page, world.paths["login"], f"anonymous/{name}", found, tally)
        for role, user in (("reviewer", world.reviewer), ("lead", world.lead), ("admin", world.admin)):
            _log_in(page, user)
            _choose_theme(page, chosen)
            for path in world.pages(role):
                _check(page, path, f"{role}/{name}", found, tally)
            if role == "reviewer":
                response = page.goto(world.paths["forbidden"])
                assert response is not None and response.status == 403
                _check(page, world.paths["forbidden"], f"reviewer/{name} (403)", found, tally)
    checked = tally.pop("pages checked")
    print(f"\naxe-core {page.evaluate('axe.version')}, WCAG 2.2 AA: {checked} page loads (role × page × theme);")
    print(f"  violations by rule (elements): {dict(sorted(tally.items())) or 'none'}")
    assert watch.csp_violations == [], watch.csp_violations
    assert not found, f"{len(found)} serious or critical violation(s):\n" + "\n".join(found)
