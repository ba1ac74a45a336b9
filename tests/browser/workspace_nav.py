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


def start_reviewing(page: Page, queue_id: int) -> None:
    """Open a queue's page, which holds nothing yet, and press Start reviewing (the POST claim)."""
    page.goto(f"/queues/{queue_id}/work")
    press_start_reviewing(page)
    expect(page.locator("#task-region .task")).to_have_count(1)


def press_start_reviewing(page: Page) -> None:
    page.get_by_role("button", name="Start reviewing").click()
