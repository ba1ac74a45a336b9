"""The workspace fits small laptop screens and can be worked through with Tab alone; no page scrolls sideways."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.pages_world import build_world
from tests.factories import ContentItemFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

VIEWPORTS: list[ViewportSize] = [{"width": 1024, "height": 640}, {"width": 1280, "height": 720}]
TEXT = " ".join(["You keep posting the same thing under every video I make, and I am tired of it."] * 8)

# Tab stops of the annotate form in DOM order: visible, enabled controls, one stop per radio group.
FORM_TAB_STOPS = """() => {
  const seen = new Set();
  return [...document.querySelectorAll("#annotate-form :is(input, select, textarea, button)")]
    .filter((el) => el.type !== "hidden" && !el.disabled && el.tabIndex >= 0)
    .filter((el) => el.type !== "radio" || (!seen.has(el.name) && seen.add(el.name)))
    .map((el) => el.outerHTML.slice(0, 80));
}"""
UNLABELLED_CONTROLS = """() => [...document.querySelectorAll("#annotate-form :is(input, select, textarea)")]
  .filter((el) => el.type !== "hidden" && el.labels.length === 0)
  .map((el) => el.outerHTML)"""


def assert_inside_width(page: Page, selector: str) -> None:
    width = page.evaluate("window.innerWidth")
    locator = page.locator(selector)
    assert locator.count() > 0, selector
    for element in locator.all():
        expect(element).to_be_visible()
        box = element.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box, width)


def test_layout_at_narrow_width(  # type: ignore[no-untyped-def]
    page: Page, watch, screenshot, log_in, start_reviewing, reviewer, policy, review_queue
) -> None:
    ReviewTaskFactory(policy=policy, queue=review_queue, item=ContentItemFactory(text=TEXT))
    log_in(reviewer)

    for viewport in VIEWPORTS:
        page.set_viewport_size(viewport)
        page.goto(f"/queues/{review_queue.pk}/work")  # the page shows the item this reviewer holds
        if page.locator("#start-form").count():
            page.get_by_role("button", name="Start reviewing").click()  # the first time: claim it
        first_label = page.locator('#annotate-form input[name="labels"]').first
        expect(first_label).to_be_focused()
        screenshot(f"{viewport['width']}x{viewport['height']}")

        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        for selector in (".content-text", '#annotate-form input[name="labels"]', "#annotate-form button[type=submit]"):
            assert_inside_width(page, selector)

        assert page.evaluate(UNLABELLED_CONTROLS) == []
        expect(page.get_by_label("Severity (optional)")).to_be_visible()
        expect(page.get_by_label("Rationale (optional)")).to_be_visible()

        stops = page.evaluate(FORM_TAB_STOPS)
        assert len(stops) == 4  # the label group, severity, rationale, submit
        for expected in stops[1:]:
            page.keyboard.press("Tab")
            focused = page.evaluate("document.activeElement.outerHTML.slice(0, 80)")
            assert focused == expected
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"no focus outline on {focused}"
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Shift+Tab")
        expect(first_label).to_be_focused()
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])


WIDE_VIEWPORTS: list[ViewportSize] = [{"width": 1280, "height": 720}, {"width": 1440, "height": 900}]
SIDEWAYS = """() => ({
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  widest: [...document.querySelectorAll("main *")]
    .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
    .slice(0, 3).map((el) => el.outerHTML.slice(0, 120)),
})"""


# Words of table cells (not ids or user text, which may be one endless token) split over two lines.
BROKEN_WORDS = """() => {
  const broken = [];
  for (const cell of document.querySelectorAll("main table td, main table th")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("bdi, code, pre, .user-text, .visually-hidden")) continue;
      for (const match of node.textContent.matchAll(/[^\\s\\-\\/–—·,;:()\\[\\]]{2,}/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const lines = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (lines.size > 1) broken.push(match[0]);
      }
    }
  }
  return broken.slice(0, 10);
}"""


def test_no_page_scrolls_sideways_on_a_laptop(page: Page, watch, log_in, settings, transactional_db) -> None:
    """Every page of every role, filled with realistic content, fits 1280×720 and 1440×900 without
    scrolling sideways, and table cells wrap between words, never inside one."""
    world = build_world(settings)
    wide: list[str] = []
    for role, user in (("reviewer", world.reviewer), ("admin", world.admin)):
        page.context.clear_cookies()
        log_in(user)
        for path in world.pages(role):
            for viewport in WIDE_VIEWPORTS:
                page.set_viewport_size(viewport)
                page.goto(path)
                page.locator("details").evaluate_all("all => all.forEach((d) => { d.open = true; })")
                found = page.evaluate(SIDEWAYS)
                if found["overflow"] > 0:
                    wide.append(f"{path} at {viewport['width']}px: {found['overflow']}px too wide, {found['widest']}")
                if broken := page.evaluate(BROKEN_WORDS):
                    wide.append(f"{path} at {viewport['width']}px: words broken across lines {broken}")
    assert wide == [], "\n".join(wide)
    assert watch.csp_violations == []
