"""The demo's media load from the app's own static host: blurred until revealed, then shown and counted."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from reviewapp.demo.corpus import demo_decision_rows
from reviewapp.models import MediaExposure
from tests.factories import ContentItemFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

BLUR = re.compile(r"\bblur\(")
LOADED = "element => element.complete && element.naturalWidth > 0"
METADATA = "element => element.readyState >= 1 && element.duration > 0"


def test_a_demo_media_item_is_blurred_loads_from_the_app_and_reveal_shows_it(  # type: ignore[no-untyped-def]
    page: Page, watch, screenshot, log_in, start_reviewing, reviewer, policy, review_queue, live_server, settings
):
    settings.MEDIA_ALLOWED_HOSTS = []  # no third-party host: the app's own static files only
    row = next(row for row in demo_decision_rows() if row["modality"] == "mixed")
    image_url, video_url = row["media_urls"]
    audio_url = next(row["media_urls"][0] for row in demo_decision_rows() if row["modality"] == "audio")
    item = ContentItemFactory(modality="mixed", text=row["text"], media_urls=[image_url, video_url, audio_url])
    ReviewTaskFactory(policy=policy, queue=review_queue, item=item)
    log_in(reviewer)

    start_reviewing(review_queue)
    image = page.get_by_role("img", name="Item image 1")
    expect(image).to_have_attribute("src", image_url)
    expect(image).to_have_css("filter", BLUR)
    page.wait_for_function(LOADED, arg=image.element_handle())
    assert f"{live_server.url}{image_url}" in watch.requests
    screenshot("demo-media-blurred")

    page.keyboard.press("r")
    expect(page.get_by_text("Graphic items viewed this shift: 1.")).to_be_visible()
    expect(image).to_have_css("filter", "none")
    for media in (page.locator("video"), page.locator("audio")):
        media.evaluate("element => element.load()")  # preload is none: ask for the file now
        page.wait_for_function(METADATA, arg=media.element_handle())
    screenshot("demo-media-revealed")

    assert MediaExposure.objects.filter(reviewer=reviewer, item=item).count() == 1
    assert watch.blocked_requests == [] and watch.csp_violations == []
    assert {f"{live_server.url}{url}" for url in (video_url, audio_url)} <= set(watch.requests)
