"""How a browser test gets to the reviewer's current item: one place to change if the way in changes."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def open_next_item(page: Page, queue_id: int) -> None:
    """Open the queue's workspace and wait until it shows the reviewer's held or next item.

    A GET of the page shows the item the reviewer already holds and claims nothing; otherwise the
    reviewer presses Start reviewing, which POSTs the claim.
    """
    page.goto(f"/queues/{queue_id}/work")
    if page.locator("#task-region .task").count() == 0:
        press_start_reviewing(page)
    expect(page.locator("#task-region .task")).to_be_visible()
    keys_ready(page)


def start_reviewing(page: Page, queue_id: int) -> None:
    """Open a queue's page, which holds nothing yet, and press Start reviewing (the POST claim)."""
    page.goto(f"/queues/{queue_id}/work")
    press_start_reviewing(page)
    expect(page.locator("#task-region .task")).to_have_count(1)
    keys_ready(page)


def press_start_reviewing(page: Page) -> None:
    page.get_by_role("button", name="Start reviewing").click()


def keys_ready(page: Page) -> None:
    """Wait until the workspace takes keys: its script has run and no item is on its way (htmx has
    swapped and settled the last one). A person cannot press a key within those milliseconds; a
    test can."""
    expect(page.locator("html[data-workspace-ready]:not([data-workspace-busy])")).to_be_attached()
