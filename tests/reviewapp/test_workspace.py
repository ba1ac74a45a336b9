"""The reviewer workspace pages through Django's test client: flow, htmx partials, safety.

Query counts of the same pages are pinned in test_hot_path_queries.py.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from labeling.models import Annotation
from reviewapp.models import AuditEvent, ContentItem, ReviewTask, TaskStatus
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


def work(browser: Client, queue):  # type: ignore[no-untyped-def]
    """What the reviewer's "Start reviewing" button does: POST the claim, follow to the queue page."""
    return browser.post(f"/queues/{queue.pk}/work", follow=True)


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
    assert browser.post(f"/queues/{other.pk}/work").status_code == 404


def test_work_page_claims_and_renders_item(browser, policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="hello there"))
    response = work(browser, queue)
    assert response.status_code == 200
    html = response.content.decode()
    assert "hello there" in html and 'name="labels" value="violating"' in html
    task.refresh_from_db()
    assert task.leased_by == reviewer


def test_htmx_submit_records_and_returns_next_item_partial(browser, policy, queue) -> None:
    first = ReviewTaskFactory(policy=policy, queue=queue, priority=2, item=ContentItemFactory(text="first one"))
    ReviewTaskFactory(policy=policy, queue=queue, priority=1, item=ContentItemFactory(text="second one"))
    html = work(browser, queue).content.decode()
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
    html = work(browser, queue).content.decode()
    data = {"submission_id": submission_id(html), "labels": "violating"}
    browser.post(f"/tasks/{task.pk}/submit", data, **HTMX)
    browser.post(f"/tasks/{task.pk}/submit", data, **HTMX)
    assert Annotation.objects.count() == 1


def test_missing_label_re_renders_with_error(browser, policy, queue) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    html = work(browser, queue).content.decode()
    response = browser.post(f"/tasks/{task.pk}/submit", {"submission_id": submission_id(html)}, **HTMX)
    assert "Choose a label" in response.content.decode()
    assert not Annotation.objects.exists()


def test_plain_form_post_redirects_back_to_queue(browser, policy, queue) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    html = work(browser, queue).content.decode()
    response = browser.post(f"/tasks/{task.pk}/submit", {"submission_id": submission_id(html), "labels": "violating"})
    assert response.status_code == 302 and response["Location"] == f"/queues/{queue.pk}/work"


def test_skip_and_undo_through_the_workspace(browser, policy, queue, reviewer) -> None:
    a = ReviewTaskFactory(policy=policy, queue=queue, priority=3)
    b = ReviewTaskFactory(policy=policy, queue=queue, priority=2)
    work(browser, queue)
    browser.post(f"/tasks/{a.pk}/skip", {"reason": "not my language"}, **HTMX)
    html = work(browser, queue).content.decode()
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
    assert "0.61" in work(browser, queue).content.decode()
    queue.blind_review = True
    queue.save()
    html = work(browser, queue).content.decode()
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
    html = work(browser, queue).content.decode()
    assert "<script>window.__pwned" not in html
    assert "<img src=x" not in html and "<svg onload" not in html
    assert 'href="javascript:' not in html


def test_hidden_characters_are_named_for_the_reviewer(browser, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="invoice\u202efdp.exe"))
    assert "right-to-left override" in work(browser, queue).content.decode()


def test_media_from_unlisted_host_is_not_loaded(browser, policy, queue, settings) -> None:
    settings.MEDIA_ALLOWED_HOSTS = ["media.trusted.example"]
    item = ContentItemFactory(
        modality="image", text="", media_urls=["https://evil.example/a.svg", "https://media.trusted.example/b.jpg"]
    )
    ReviewTaskFactory(policy=policy, queue=queue, item=item)
    html = work(browser, queue).content.decode()
    assert 'src="https://evil.example' not in html and "<code>https://evil.example/a.svg</code>" in html
    assert 'src="https://media.trusted.example/b.jpg"' in html
    assert 'class="media concealed"' in html


def test_reveal_counts_exposure_and_unblurs(browser, policy, queue, settings) -> None:
    settings.MEDIA_ALLOWED_HOSTS = ["media.trusted.example"]
    item = ContentItemFactory(modality="image", media_urls=["https://media.trusted.example/b.jpg"])
    task = ReviewTaskFactory(policy=policy, queue=queue, item=item)
    work(browser, queue)
    html = browser.post(f"/tasks/{task.pk}/reveal", **HTMX).content.decode()
    assert "concealed" not in html and "Graphic items viewed this shift: 1" in html


def test_csp_forbids_inline_script_on_workspace(browser, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    response = work(browser, queue)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.content.decode())


def test_empty_queue_says_so(browser, queue) -> None:
    assert "Nothing to review here right now" in work(browser, queue).content.decode()


def test_get_of_the_work_page_claims_nothing_and_offers_a_post_button(browser, policy, queue, reviewer) -> None:
    # A GET is reachable by a link, a prefetch or a cross-site navigation: it must not lease work.
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="hello there"))
    response = browser.get(f"/queues/{queue.pk}/work")
    html = response.content.decode()
    assert response.status_code == 200 and "hello there" not in html
    assert re.search(rf'<form method="post" action="/queues/{queue.pk}/work"[^>]*id="start-form"', html)
    assert "Start reviewing" in html
    task.refresh_from_db()
    assert task.leased_by is None and task.claimed_at is None
    assert not AuditEvent.objects.filter(action="task.claimed").exists()


def test_post_claims_then_redirects_to_the_page_that_shows_the_held_task(browser, policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="hello there"))
    response = browser.post(f"/queues/{queue.pk}/work")
    assert response.status_code == 302 and response["Location"] == f"/queues/{queue.pk}/work"
    task.refresh_from_db()
    assert task.leased_by == reviewer
    assert "hello there" in browser.get(f"/queues/{queue.pk}/work").content.decode()  # reload resumes
    assert AuditEvent.objects.filter(action="task.claimed").count() == 1


def test_htmx_post_claims_and_returns_the_task_partial(browser, policy, queue, reviewer) -> None:
    ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="hello there"))
    body = browser.post(f"/queues/{queue.pk}/work", **HTMX).content.decode()
    assert "<html" not in body and "hello there" in body


def test_queue_list_starts_reviewing_with_a_post_form(browser, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    html = browser.get("/").content.decode()
    start = rf'<form method="post" action="/queues/{queue.pk}/work"[^>]*>\s*<input type="hidden" name="csrf'
    assert re.search(start, html)
    assert f'href="/queues/{queue.pk}/work"' not in html


def test_cross_site_post_to_claim_is_refused(reviewer, policy, queue) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    task = ReviewTaskFactory(policy=policy, queue=queue)
    assert client.post(f"/queues/{queue.pk}/work").status_code == 403
    task.refresh_from_db()
    assert task.leased_by is None


def test_lost_lease_offers_the_next_item_as_a_post(browser, policy, queue) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    html = browser.post(f"/tasks/{task.pk}/heartbeat", **HTMX).content.decode()
    assert "expired or was released" in html
    assert re.search(rf'<form method="post" action="/queues/{queue.pk}/work"', html)


@pytest.fixture
def graphic_task(policy, queue, settings):  # type: ignore[no-untyped-def]
    settings.MEDIA_ALLOWED_HOSTS = ["media.trusted.example"]
    item = ContentItemFactory(modality="image", media_urls=["https://media.trusted.example/b.jpg"])
    return ReviewTaskFactory(policy=policy, queue=queue, item=item)


def test_reveal_of_a_task_held_by_another_reviewer_counts_nothing(browser, graphic_task, queue) -> None:
    from reviewapp.models import MediaExposure
    from reviewapp.services.claims import task_claim_next

    other = UserFactory()
    assert task_claim_next(reviewer=other, queue=queue).task.pk == graphic_task.pk
    plain = browser.post(f"/tasks/{graphic_task.pk}/reveal")
    assert plain.status_code == 409 and "You do not hold this item" in plain.content.decode()
    htmx = browser.post(f"/tasks/{graphic_task.pk}/reveal", **HTMX).content.decode()
    assert "You do not hold this item" in htmx and 'class="media concealed"' in htmx
    assert not MediaExposure.objects.exists()
    assert not AuditEvent.objects.filter(action="media.revealed").exists()


def test_reveal_of_a_task_never_claimed_counts_nothing(browser, graphic_task) -> None:
    from reviewapp.models import MediaExposure

    assert browser.post(f"/tasks/{graphic_task.pk}/reveal").status_code == 409
    assert not MediaExposure.objects.exists()


def test_reveal_of_media_from_a_blocked_host_counts_nothing(browser, policy, queue, settings) -> None:
    from reviewapp.models import MediaExposure

    settings.MEDIA_ALLOWED_HOSTS = ["media.trusted.example"]
    item = ContentItemFactory(modality="image", media_urls=["https://evil.example/a.jpg"])
    task = ReviewTaskFactory(policy=policy, queue=queue, item=item)
    html = work(browser, queue).content.decode()
    assert "<code>https://evil.example/a.jpg</code>" in html and "Reveal media" not in html
    response = browser.post(f"/tasks/{task.pk}/reveal")
    assert response.status_code == 409 and "no media that can be shown here" in response.content.decode()
    assert not MediaExposure.objects.exists()


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain-form"])
def test_submitting_a_task_never_served_says_why_on_the_page(browser, policy, queue, htmx: bool) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    data = {"submission_id": "3f1c2b9e-0000-4000-8000-000000000001", "labels": "violating"}
    if htmx:
        html = browser.post(f"/tasks/{task.pk}/submit", data, **HTMX).content.decode()
    else:
        response = browser.post(f"/tasks/{task.pk}/submit", data)
        assert response.status_code == 302
        html = browser.get(response["Location"]).content.decode()
    assert "This item was not assigned to you" in html
    assert not Annotation.objects.exists()


def test_counts_have_thousands_separators_on_the_queue_list_and_in_the_workspace(browser, policy, queue) -> None:
    items = ContentItem.objects.bulk_create(
        [ContentItem(source="comments", external_id=f"bulk-{n}", text="t") for n in range(1234)]
    )
    ReviewTask.objects.bulk_create(
        [
            ReviewTask(
                item=item, policy=policy, queue=queue, reason="low_confidence", priority=1.0, due_at=timezone.now()
            )
            for item in items
        ]
    )
    assert '<td class="num">1,234</td>' in browser.get("/").content.decode()
    counter = re.search(
        r'<p class="session-counter[^"]*" id="session-counter">(.*?)</p>', work(browser, queue).content.decode()
    )
    assert counter and "<strong>0</strong> done" in counter.group(1)
    assert "<strong>1,234</strong> open in this queue" in counter.group(1)
