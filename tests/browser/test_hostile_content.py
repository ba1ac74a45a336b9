"""Hostile content, ingested like any other, is shown as text: nothing runs, loads or spills over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from reviewapp.audit import SYSTEM
from reviewapp.services.ingest import decisions_ingest
from tests.browser.workspace_nav import keys_ready, open_next_item
from tests.factories import BINARY_SCHEMA, ContentItemFactory, PolicyFactory, ReviewTaskFactory, RoutingRuleFactory

pytestmark = pytest.mark.browser

PWN = "window.__pwned=1"
POLYGLOT = (
    r"""jaVasCript:/*-/*`/*\`/*'/*"/**/(/* */oNcliCk=alert() )//%0D%0A%0d%0a//</stYle/</titLe/</teXtarEa/"""
    r"""</scRipt/--!>\x3csVg/<sVg/oNloAd=alert()//>\x3e"""
)
PAYLOADS = {
    "script": f"<script>{PWN}</script>",
    "img-onerror": f'<img src=x onerror="{PWN}">',
    "svg-onload": f'<svg onload="{PWN}">',
    "javascript-url": f"javascript:{PWN}",
    "polyglot": POLYGLOT,
    "polyglot-decoded": POLYGLOT.replace(r"\x3c", "<").replace(r"\x3e", ">"),
    "bidi-and-zero-width": "invoice\u202egpj.exe h\u200da\u200dt\u200de s\u200bpeech \u2067isolate\u2069",
    "long-token": "W" * 20_000,
}
EVIL_MEDIA = "https://evil.example/x.svg"
HOSTILE_GUIDELINE = f"<script>{PWN}</script>\n\n[read more](javascript:{PWN})\n\n<img src=x onerror=alert(1)>"
HOSTILE_SCHEMA = {
    **BINARY_SCHEMA,
    "labels": [
        {"value": "violating", "title": PAYLOADS["img-onerror"], "description": PAYLOADS["script"]},
        {"value": "not_violating", "title": PAYLOADS["polyglot-decoded"]},
    ],
}
# Appends an inline script and resolves with the CSP directive that refused it.
INLINE_SCRIPT_PROBE = """() => new Promise((resolve) => {
  document.addEventListener("securitypolicyviolation", (event) => resolve(event.effectiveDirective), {once: true});
  document.body.append(Object.assign(document.createElement("script"), {text: "window.__pwned = 1"}));
})"""


def decision_row(name: str, payload: str, **item: object) -> dict[str, object]:
    """One decision whose every displayed text field carries the payload (cut to the field's limit)."""
    return {
        "source": "comments",
        "external_id": f"{name}:{payload}"[:255],
        "title": payload,
        "text": payload,
        "context": [{"author": payload[:200], "text": payload}],
        "metadata": {payload[:200]: payload[:8000], "language": "en"},
        "policy": "harassment",
        "model_name": "toxbert",
        "model_version": payload[:100],
        "score": 0.5,  # the human-review band
        "predicted_label": payload[:100],
        "evidence_spans": [{"start": 0, "end": min(len(payload), 12), "label": payload[:100]}],
        **item,
    }


@pytest.fixture
def hostile_queue(queue, reviewer):  # type: ignore[no-untyped-def]
    """The shared queue, named with markup, holding one task per payload (ingested like production data)."""
    policy = PolicyFactory(
        key="harassment",
        name=PAYLOADS["svg-onload"],
        version__guideline=HOSTILE_GUIDELINE,
        version__label_schema=HOSTILE_SCHEMA,
    )
    queue.name = PAYLOADS["img-onerror"] + PAYLOADS["script"]
    queue.save(update_fields=["name"])
    queue.members.add(reviewer)
    RoutingRuleFactory(policy=policy, queue=queue, auto_clear=0.2, auto_action=0.9)
    rows = [decision_row(name, payload) for name, payload in PAYLOADS.items()]
    rows.append(decision_row("evil-media", PAYLOADS["img-onerror"], modality="image", media_urls=[EVIL_MEDIA]))
    result = decisions_ingest(rows=rows, actor=SYSTEM)
    assert result.errors == [] and result.created == len(rows)
    return queue, {r["task_id"] for r in result.results}


def visit_every_item(page: Page, queue_url: str) -> Iterator[tuple[str, str]]:
    """Show each item of the queue twice: after a page load, then swapped in by htmx on a skip.

    Yields (payload name, how it arrived); the caller checks the page in between.
    """
    task = page.locator("#task-region .task")
    page.goto(queue_url)
    page.get_by_role("button", name="Start reviewing").click()  # claiming is a POST
    expect(task).to_have_count(1)
    while task.count():
        yield shown_payload(page), "page load"
        keys_ready(page)
        page.keyboard.press("s")
        page.keyboard.press("Enter")
        expect(page.locator("#task-region .notice")).to_have_text("Skipped.")
        if task.count():
            yield shown_payload(page), "htmx swap"
        page.goto(queue_url)  # the item skipped to is held by this reviewer: the page shows it again


def shown_payload(page: Page) -> str:
    return (page.locator(".item-id bdi").text_content() or "").split(":", 1)[0]


def assert_nothing_ran(page: Page, watch) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert watch.dialogs == []
    assert [url for url in watch.requests if "evil.example" in url] == []
    # An `<img src=x>` that became markup would fetch /…/x from the live server even under the CSP.
    assert [url for url in watch.requests if urlsplit(url).path.endswith("/x")] == []


def assert_form_usable(page: Page) -> None:
    """The labels and the submit button are shown, and fully inside the viewport's width."""
    width = page.evaluate("window.innerWidth")
    controls = page.locator('#annotate-form input[name="labels"], #annotate-form button[type="submit"]')
    assert controls.count() == 3
    for control in controls.all():
        expect(control).to_be_visible()
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box


def horizontal_overflow(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_hostile_content_does_not_execute(page: Page, watch, screenshot, log_in, reviewer, hostile_queue) -> None:
    queue, task_ids = hostile_queue
    queue_url = f"/queues/{queue.pk}/work"
    log_in(reviewer)

    for path in ("/", queue_url):
        response = page.goto(path)
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (path, csp)
    page.goto("/")
    expect(page.get_by_role("cell", name=PAYLOADS["img-onerror"] + PAYLOADS["script"])).to_be_visible()
    screenshot("queue-list")
    assert_nothing_ran(page, watch)
    assert horizontal_overflow(page) <= 0

    shown = []
    for name, how in visit_every_item(page, queue_url):
        shown.append(name)
        screenshot(f"{name}-{how.replace(' ', '-')}")
        assert_nothing_ran(page, watch)
        assert_form_usable(page)
        if name != "evil-media":  # its text is the img payload; its media is tested below
            assert page.locator(".content-text").text_content() == PAYLOADS[name], f"{name} is not shown as text"
        else:
            expect(page.locator(".media-placeholder code")).to_have_text(EVIL_MEDIA)
            assert page.locator(".media img").count() == 0
    assert sorted(set(shown)) == sorted([*PAYLOADS, "evil-media"])
    assert len(shown) == 2 * len(task_ids) - 1  # the first item arrives by page load only
    assert_nothing_ran(page, watch)

    print("CSP violations:", watch.csp_violations or "none")
    assert watch.csp_violations == []
    # The browser enforces the header (an inline script is refused), and the recorder sees it.
    refused = page.evaluate(INLINE_SCRIPT_PROBE)
    assert refused == "script-src-elem" and page.evaluate("typeof window.__pwned") == "undefined"
    deadline = time.monotonic() + 5
    while not watch.csp_violations and time.monotonic() < deadline:
        page.wait_for_timeout(20)  # lets Playwright deliver the page's call to the recorder
    assert [v["directive"] for v in watch.csp_violations] == ["script-src-elem"]


def test_hostile_text_stays_inside_the_page_width(page: Page, watch, log_in, reviewer, hostile_queue) -> None:
    queue, _ = hostile_queue
    log_in(reviewer)
    overflows = {}
    page.goto(f"/queues/{queue.pk}/work")
    page.get_by_role("button", name="Start reviewing").click()  # claiming is a POST
    expect(page.locator("#task-region .task")).to_have_count(1)
    while page.locator("#task-region .task").count():
        page.locator("details.metadata").evaluate_all("details => details.forEach(d => { d.open = true; })")
        if (overflow := horizontal_overflow(page)) > 0:
            overflows[shown_payload(page)] = overflow
        shown = page.locator("#task-region .task").get_attribute("data-task")
        keys_ready(page)
        page.keyboard.press("s")
        page.keyboard.press("Enter")
        expect(page.locator(f'#task-region .task[data-task="{shown}"]')).to_have_count(0)
        expect(page.locator("#task-region .notice")).to_have_text("Skipped.")
    assert overflows == {}, "the page scrolls sideways by this many pixels"


def test_hidden_characters_are_named_in_every_field(
    page: Page, watch, screenshot, log_in, reviewer, policy, review_queue
) -> None:
    """A reversed file name in a title reads "invoice exe.pdf": the reviewer is told what hides in each field."""
    item = ContentItemFactory(
        title="invoice \u202efdp.exe",
        text="plain text",
        external_id="order\u200d-1138",
        context=[{"author": "ad\u200bmin", "text": "see attachment"}],
        metadata={"language": "en", "uploader": "sup\u2066port\u2069"},
    )
    ReviewTaskFactory(policy=policy, queue=review_queue, item=item)
    log_in(reviewer)
    open_next_item(page, review_queue.pk)
    warnings = page.locator(".item .hidden-characters li")
    expected = [
        "Hidden characters in the external id: zero-width joiner.",
        "Hidden characters in the title: right-to-left override.",
        "Hidden characters in the conversation turn 1 author: zero-width space.",
        "Hidden characters in the metadata “uploader”: left-to-right isolate, pop directional isolate.",
    ]
    expect(warnings).to_have_text(expected)
    for warning in warnings.all():
        expect(warning).to_be_visible()
    screenshot("hidden-characters")
    assert watch.csp_violations == []
