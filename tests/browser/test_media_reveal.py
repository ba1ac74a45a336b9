"""Graphic media is blurred until the reviewer asks to see it, and the exposure is counted."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import AuditEvent, MediaExposure, ReviewTask
from tests.factories import ContentItemFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

MEDIA_HOST = "media.trusted.example"
MEDIA_URL = f"https://{MEDIA_HOST}/b.jpg"
BLUR = re.compile(r"\bblur\(")


def test_media_is_blurred_until_revealed(  # type: ignore[no-untyped-def]
    page: Page, watch, screenshot, log_in, reviewer, policy, review_queue, settings
):
    # The live server's CSP was built from the environment at start-up, so it may refuse the
    # image; either way `watch` aborts the request. Blurring is checked on the element itself.
    settings.MEDIA_ALLOWED_HOSTS = [MEDIA_HOST]
    item = ContentItemFactory(modality="image", text="see attached", media_urls=[MEDIA_URL])
    ReviewTaskFactory(policy=policy, queue=review_queue, item=item)
    log_in(reviewer)

    page.goto(f"/queues/{review_queue.pk}/work")
    image = page.get_by_role("img", name="Item image 1")
    expect(image).to_have_attribute("src", MEDIA_URL)
    expect(image).to_have_css("filter", BLUR)
    expect(page.get_by_role("button", name="Reveal media")).to_be_visible()
    screenshot("blurred")

    page.keyboard.press("r")
    expect(page.get_by_text("Graphic items viewed this shift: 1.")).to_be_visible()
    expect(image).to_have_css("filter", "none")
    expect(page.get_by_role("button", name="Reveal media")).to_have_count(0)
    screenshot("revealed")

    task = ReviewTask.objects.get()
    assert list(MediaExposure.objects.values_list("reviewer_id", "item_id", "queue_id")) == [
        (reviewer.pk, task.item_id, review_queue.pk)
    ]
    assert AuditEvent.objects.filter(action="media.revealed", object_id=str(task.pk), actor_id=reviewer.pk).exists()
    assert {urlsplit(url).hostname for url in watch.blocked_requests} <= {MEDIA_HOST}
    assert watch.dialogs == []
