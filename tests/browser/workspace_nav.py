"""How a browser test gets to the reviewer's current item: one place to change if the way in changes."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def open_next_item(page: Page, queue_id: int) -> None:
    """Open the queue's workspace and wait until it shows the reviewer's next (or held) item."""
    page.goto(f"/queues/{queue_id}/work")
    expect(page.locator("#task-region .task")).to_be_visible()
