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
    page: Page, watch, screenshot, log_in, start_reviewing, reviewer, policy, review_queue, settings
):
    # The live server's CSP was built from the environment at start-up, so it may refuse the
    # image; either way `watch` aborts the request. Blurring is checked on the element itself.
    settings.MEDIA_ALLOWED_HOSTS = [MEDIA_HOST]
    item = ContentItemFactory(modality="image", text="see attached", media_urls=[MEDIA_URL])
    ReviewTaskFactory(policy=policy, queue=review_queue, item=item)
    log_in(reviewer)

    start_reviewing(review_queue)
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


# A reveal that the server accepts anyway, as a stale page or a hand-made request would send it.
POST_REVEAL = """async (url) => {
  const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
  const response = await fetch(url, {method: "POST", headers: {"X-CSRFToken": token}});
  return response.status;
}"""


def test_media_from_a_blocked_host_is_not_revealed_nor_counted(  # type: ignore[no-untyped-def]
    page: Page, watch, screenshot, log_in, start_reviewing, reviewer, policy, review_queue, settings
):
    settings.MEDIA_ALLOWED_HOSTS = [MEDIA_HOST]
    blocked = "https://blocked.example/a.jpg"
    item = ContentItemFactory(modality="image", text="see attached", media_urls=[blocked])
    task = ReviewTaskFactory(policy=policy, queue=review_queue, item=item)
    log_in(reviewer)

    start_reviewing(review_queue)
    expect(page.locator(".media-placeholder code")).to_have_text(blocked)
    expect(page.get_by_role("img")).to_have_count(0)
    # Nothing can load, so there is nothing to reveal: no button, and the shortcut does nothing.
    expect(page.get_by_role("button", name="Reveal media")).to_have_count(0)
    page.keyboard.press("r")
    screenshot("blocked-media")
    assert page.evaluate(POST_REVEAL, f"/tasks/{task.pk}/reveal") == 409
    expect(page.get_by_text("Graphic items viewed this shift")).to_have_count(0)

    assert not MediaExposure.objects.exists()
    assert not AuditEvent.objects.filter(action="media.revealed").exists()
    assert [url for url in watch.requests if "blocked.example" in url] == []
