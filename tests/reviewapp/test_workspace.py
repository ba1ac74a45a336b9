"""The reviewer workspace pages through Django's test client: flow, htmx partials, safety.

Query counts of the same pages are pinned in test_hot_path_queries.py.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from labeling.models import Annotation
from reviewapp.models import AuditEvent, TaskStatus
from tests.factories import ContentItemFactory, ReviewTaskFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def reviewer(queue):  # type: ignore[no-untyped-def]
    user = UserFactory(username="rev1")
    queue.members.add(user)
    return user


@pytest.fixture
def browser(reviewer) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(reviewer)
    return client


def submission_id(html: str) -> str:
    return re.search(r'name="submission_id" value="([0-9a-f-]{36})"', html).group(1)


def test_queue_list_shows_depth_and_link(browser, policy, queue) -> None:
    ReviewTaskFactory.create_batch(3, policy=policy, queue=queue)
    html = browser.get("/").content.decode()
    assert "harassment-review" in html and f"/queues/{queue.pk}/work" in html
    assert re.search(r'<td class="num">3</td>', html)


def test_reviewer_sees_only_member_queues(browser, policy) -> None:
    from tests.factories import QueueFactory

    other = QueueFactory(slug="secret-queue")
    ReviewTaskFactory(policy=policy, queue=other)
    assert "secret-queue" not in browser.get("/").content.decode()
    assert browser.get(f"/queues/{other.pk}/work").status_code == 404


def test_work_page_claims_and_renders_item(browser, policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="hello there"))
    response = browser.get(f"/queues/{queue.pk}/work")
    assert response.status_code == 200
    html = response.content.decode()
    assert "hello there" in html and 'name="labels" value="violating"' in html
    task.refresh_from_db()
    assert task.leased_by == reviewer


def test_htmx_submit_records_and_returns_next_item_partial(browser, policy, queue) -> None:
    first = ReviewTaskFactory(policy=policy, queue=queue, priority=2, item=ContentItemFactory(text="first one"))
    ReviewTaskFactory(policy=policy, queue=queue, priority=1, item=ContentItemFactory(text="second one"))
    html = browser.get(f"/queues/{queue.pk}/work").content.decode()
    response = browser.post(
        f"/tasks/{first.pk}/submit",
        {"submission_id": submission_id(html), "labels": "violating", "handle_time_ms": "1500"},
        **HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and "second one" in body and "Undo last answer" in body
    annotation = Annotation.objects.get()
    assert (annotation.task_id, annotation.labels) == (first.pk, ["violating"])


def test_double_submit_with_same_form_records_once(browser, policy, queue) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    html = browser.get(f"/queues/{queue.pk}/work").content.decode()
    data = {"submission_id": submission_id(html), "labels": "violating"}
    browser.post(f"/tasks/{task.pk}/submit", data, **HTMX)
    browser.post(f"/tasks/{task.pk}/submit", data, **HTMX)
    assert Annotation.objects.count() == 1


def test_missing_label_re_renders_with_error(browser, policy, queue) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    html = browser.get(f"/queues/{queue.pk}/work").content.decode()
    response = browser.post(f"/tasks/{task.pk}/submit", {"submission_id": submission_id(html)}, **HTMX)
    assert "Choose a label" in response.content.decode()
    assert not Annotation.objects.exists()


def test_plain_form_post_redirects_back_to_queue(browser, policy, queue) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    html = browser.get(f"/queues/{queue.pk}/work").content.decode()
    response = browser.post(f"/tasks/{task.pk}/submit", {"submission_id": submission_id(html), "labels": "violating"})
    assert response.status_code == 302 and response["Location"] == f"/queues/{queue.pk}/work"


def test_skip_and_undo_through_the_workspace(browser, policy, queue, reviewer) -> None:
    a = ReviewTaskFactory(policy=policy, queue=queue, priority=3)
    b = ReviewTaskFactory(policy=policy, queue=queue, priority=2)
    browser.get(f"/queues/{queue.pk}/work")
    browser.post(f"/tasks/{a.pk}/skip", {"reason": "not my language"}, **HTMX)
    html = browser.get(f"/queues/{queue.pk}/work").content.decode()
    browser.post(f"/tasks/{b.pk}/submit", {"submission_id": submission_id(html), "labels": "violating"}, **HTMX)
    annotation = Annotation.objects.get()
    response = browser.post(f"/annotations/{annotation.pk}/undo", **HTMX)
    assert "Undone" in response.content.decode()
    b.refresh_from_db()
    assert (b.status, b.leased_by) == (TaskStatus.OPEN, reviewer)
    assert AuditEvent.objects.filter(action__in=["task.skipped", "annotation.retracted"]).count() == 2


def test_blind_queue_hides_model_score(browser, policy, queue) -> None:
    from reviewapp.models import ModelDecision

    item = ContentItemFactory(text="borderline")
    decision = ModelDecision.objects.create(
        item=item,
        policy=policy,
        model_name="tox-bert",
        model_version="v9",
        score=0.61234,
        routing_outcome="review",
        sampling_propensity=1.0,
    )
    ReviewTaskFactory(policy=policy, queue=queue, item=item, decision=decision)
    assert "0.61" in browser.get(f"/queues/{queue.pk}/work").content.decode()
    queue.blind_review = True
    queue.save()
    html = browser.get(f"/queues/{queue.pk}/work").content.decode()
    assert "0.61" not in html and "tox-bert" not in html and "Blind review" in html


HOSTILE = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    '"><svg onload=alert(1)>',
    "javascript:alert(document.cookie)",
    "\u202egnp.exe",
    "a\u200db",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_text_is_escaped_everywhere(browser, policy, queue, payload: str) -> None:
    item = ContentItemFactory(
        text=payload, title=payload, context=[{"author": payload, "text": payload}], metadata={"note": payload}
    )
    ReviewTaskFactory(policy=policy, queue=queue, item=item)
    html = browser.get(f"/queues/{queue.pk}/work").content.decode()
    assert "<script>window.__pwned" not in html
    assert "<img src=x" not in html and "<svg onload" not in html
    assert 'href="javascript:' not in html


def test_hidden_characters_are_named_for_the_reviewer(browser, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="invoice\u202efdp.exe"))
    assert "right-to-left override" in browser.get(f"/queues/{queue.pk}/work").content.decode()


def test_media_from_unlisted_host_is_not_loaded(browser, policy, queue, settings) -> None:
    settings.MEDIA_ALLOWED_HOSTS = ["media.trusted.example"]
    item = ContentItemFactory(
        modality="image", text="", media_urls=["https://evil.example/a.svg", "https://media.trusted.example/b.jpg"]
    )
    ReviewTaskFactory(policy=policy, queue=queue, item=item)
    html = browser.get(f"/queues/{queue.pk}/work").content.decode()
    assert 'src="https://evil.example' not in html and "<code>https://evil.example/a.svg</code>" in html
    assert 'src="https://media.trusted.example/b.jpg"' in html
    assert 'class="media concealed"' in html


def test_reveal_counts_exposure_and_unblurs(browser, policy, queue, settings) -> None:
    settings.MEDIA_ALLOWED_HOSTS = ["media.trusted.example"]
    item = ContentItemFactory(modality="image", media_urls=["https://media.trusted.example/b.jpg"])
    task = ReviewTaskFactory(policy=policy, queue=queue, item=item)
    browser.get(f"/queues/{queue.pk}/work")
    html = browser.post(f"/tasks/{task.pk}/reveal", **HTMX).content.decode()
    assert "concealed" not in html and "Graphic items viewed this shift: 1" in html


def test_csp_forbids_inline_script_on_workspace(browser, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    response = browser.get(f"/queues/{queue.pk}/work")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.content.decode())


def test_empty_queue_says_so(browser, queue) -> None:
    assert "Nothing to review here right now" in browser.get(f"/queues/{queue.pk}/work").content.decode()
