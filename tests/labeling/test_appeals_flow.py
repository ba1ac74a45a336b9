"""Appeals through the user's path: a lead creates the appeals queue on its page, upstream opens an
appeal over the API, a reviewer decides it in the workspace seeing the statement and the contested
outcome (and nothing of who produced it), and leads read the outcome per policy."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.test import APIClient

import labeling.views
from labeling.models import Appeal, AppealStatus, GoldSource
from labeling.services.annotations import annotation_submit
from labeling.services.appeals import appeal_open
from labeling.services.honeypots import honeypots_top_up
from reviewapp.audit import SYSTEM
from reviewapp.demo.seeding import demo_catalogue_ensure, demo_token_ensure
from reviewapp.models import AuditEvent, ModelDecision, Queue, ReviewTask, TaskReason
from reviewapp.services.claims import task_claim_next
from tests.factories import ContentItemFactory, PolicyFactory, QueueFactory, ReviewTaskFactory, UserFactory

HOSTILE_STATEMENT = (
    'I was joking <script>alert(1)</script> "><img src=x onerror=alert(1)> '
    "see \u202efdp.exe and zero\u200bwidth\u200dhere"
)


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


def member_of(group: str, username: str) -> User:
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def appeals_api(make_token, scopes=("appeals:write",)) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(list(scopes))}")
    return client


def auto_actioned(policy, external_id: str, *, score: float = 0.97) -> None:  # type: ignore[no-untyped-def]
    item = ContentItemFactory(source="comments", external_id=external_id, text=f"{external_id}: you are a clown")
    ModelDecision.objects.create(
        item=item,
        policy=policy,
        model_name="tox-bert",
        model_version="2026.11",
        score=score,
        predicted_label="violating",
        routing_outcome="auto_action",
        sampling_propensity=0.0,
    )


def appeal_body(policy, external_id: str, appeal_id: str, statement: str = "it was a joke") -> dict:  # type: ignore[no-untyped-def]
    return {
        "source": "comments",
        "external_id": external_id,
        "policy": policy.key,
        "appeal_id": appeal_id,
        "statement": statement,
    }


def appeal_section(html: str) -> str:
    found = re.search(r'<section class="appeal".*?</section>', html, re.S)
    assert found, "the page shows no appeal"
    return found.group(0)


def decide(client: Client, queue: Queue, label: str) -> str:
    """Claim with Start reviewing, then submit `label` as the workspace form does; the claimed page's HTML."""
    html = client.post(f"/queues/{queue.pk}/work", follow=True).content.decode()
    task_id = re.search(r'data-task="(\d+)"', html).group(1)
    submission = re.search(r'name="submission_id" value="([0-9a-f-]{36})"', html).group(1)
    response = client.post(f"/tasks/{task_id}/submit", {"submission_id": submission, "labels": label})
    assert response.status_code == 302
    return html


def test_a_lead_creates_the_appeals_queue_on_the_appeals_page_and_upstream_can_appeal_then(make_token, policy) -> None:
    lead = member_of("policy_lead", "lead")
    reviewer = member_of("reviewer", "rev-a")
    auto_actioned(policy, "c-1")
    api = appeals_api(make_token)

    refused = api.post("/api/v1/appeals", appeal_body(policy, "c-1", "ap-1"), format="json")
    assert refused.status_code == 409
    assert "/lead/appeals/" in refused.json()["detail"] and "Create the appeals queue" in refused.json()["detail"]

    page = logged_in(lead).get("/lead/appeals/").content.decode()
    assert "No appeals queue is active" in page and "Create the appeals queue</button>" in page
    assert logged_in(reviewer).post("/lead/appeals/queue").status_code == 403
    assert not Queue.objects.filter(kind="appeals").exists()

    created = logged_in(lead).post("/lead/appeals/queue", follow=True).content.decode()
    assert "Created the appeals queue" in created and "Create the appeals queue</button>" not in created
    queue = Queue.objects.get(kind="appeals")
    assert (queue.is_active, queue.honeypot_rate, queue.required_annotations) == (True, 0.0, 1)
    assert set(queue.members.values_list("username", flat=True)) == {"lead", "rev-a"}
    event = AuditEvent.objects.get(action="queue.created", object_id=queue.pk)
    assert event.actor_id == lead.pk and event.after["kind"] == "appeals"

    again = logged_in(lead).post("/lead/appeals/queue", follow=True).content.decode()
    assert "already exists" in again and Queue.objects.filter(kind="appeals").count() == 1

    opened = api.post("/api/v1/appeals", appeal_body(policy, "c-1", "ap-1"), format="json")
    assert opened.status_code == 201 and opened.json()["original_labels"] == ["violating"]
    assert ReviewTask.objects.get(pk=opened.json()["task_id"]).queue == queue


def test_a_disabled_appeals_queue_is_enabled_again_not_duplicated(policy) -> None:
    lead = member_of("policy_lead", "lead")
    QueueFactory(slug="appeals", kind="appeals", is_active=False)
    page = logged_in(lead).get("/lead/appeals/").content.decode()
    assert "Enable the appeals queue</button>" in page
    done = logged_in(lead).post("/lead/appeals/queue", follow=True).content.decode()
    assert "Enabled the appeals queue" in done
    assert list(Queue.objects.filter(kind="appeals").values_list("slug", "is_active")) == [("appeals", True)]
    assert AuditEvent.objects.filter(action="queue.enabled", actor_id=lead.pk).count() == 1


def test_the_demo_token_opens_an_appeal_as_the_readme_shows_and_a_token_without_the_scope_is_refused(
    make_token,
) -> None:
    demo_catalogue_ensure()
    secret = demo_token_ensure()["token demo-upstream"]
    demo = APIClient()
    demo.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    # The two requests of the README, as sent there.
    ingest = demo.post(
        "/api/v1/decisions",
        {
            "decisions": [
                {
                    "source": "comments",
                    "external_id": "c-2",
                    "text": "nobody wants you here, clown",
                    "policy": "harassment",
                    "model_name": "tox-bert",
                    "model_version": "2026.11",
                    "score": 0.98,
                }
            ]
        },
        format="json",
    )
    assert ingest.status_code == 200
    body = {
        "source": "comments",
        "external_id": "c-2",
        "policy": "harassment",
        "appeal_id": "ap-1",
        "statement": "It was a joke between friends.",
    }
    without_scope = appeals_api(make_token, scopes=("decisions:write",))
    assert without_scope.post("/api/v1/appeals", body, format="json").status_code == 403
    opened = demo.post("/api/v1/appeals", body, format="json")
    assert opened.status_code == 201, opened.content
    assert opened.json()["status"] == "open" and opened.json()["original_labels"]
    assert ReviewTask.objects.get(pk=opened.json()["task_id"]).queue.slug == "appeals"


@pytest.fixture
def appeals_queue(db):  # type: ignore[no-untyped-def]
    return QueueFactory(slug="appeals", kind="appeals")


def test_the_reviewer_sees_the_appeal_its_statement_escaped_and_the_automatic_action_then_overturns_it(
    make_token, policy, appeals_queue
) -> None:
    reviewer = member_of("reviewer", "rev-a")
    appeals_queue.members.add(reviewer)
    auto_actioned(policy, "c-3")
    opened = appeals_api(make_token).post(
        "/api/v1/appeals", appeal_body(policy, "c-3", "ap-3", HOSTILE_STATEMENT), format="json"
    )
    assert opened.status_code == 201
    client = logged_in(reviewer)

    html = decide(client, appeals_queue, "not_violating")

    section = appeal_section(html)
    assert '<span class="badge">Appeal</span>' in section
    assert re.search(
        r"Automatic action by model <bdi>tox-bert</bdi> version <bdi>2026.11</bdi> at score <strong>0.97</strong>:\s*"
        r'<strong class="appeal-labels"><bdi>Violating</bdi></strong>',
        section,
    )
    appealed_at = Appeal.objects.get().created_at
    assert f'<time datetime="{appealed_at.isoformat()}">{appealed_at:%Y-%m-%d %H:%M} UTC</time>' in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in section
    assert "<script>alert" not in html and "<img src=x" not in html
    assert (
        "Hidden characters in the <bdi>appeal statement</bdi>: right-to-left override, zero-width space, "
        "zero-width joiner." in html
    )
    assert "\u202efdp.exe" in section  # shown as sent, isolated, and named above
    appeal = Appeal.objects.get()
    assert appeal.status == AppealStatus.OVERTURNED and appeal.outcome_gold.source == GoldSource.APPEAL
    assert appeal.outcome_gold.labels == ["not_violating"]


def test_an_appeal_of_a_gold_label_shows_the_outcome_but_not_who_reached_it_and_is_upheld(
    make_token, policy, queue, appeals_queue
) -> None:
    first = UserFactory(username="first-reviewer")
    queue.members.add(first)
    item = ContentItemFactory(source="comments", external_id="c-4", text="c-4: get lost, clown")
    task = ReviewTaskFactory(policy=policy, queue=queue, item=item)
    task_claim_next(reviewer=first, queue=queue)
    annotation_submit(
        task_id=task.pk,
        reviewer=first,
        submission_id=uuid.uuid4(),
        labels=["violating"],
        rationale="private rationale of the first reviewer",
    )
    opened = appeals_api(make_token).post("/api/v1/appeals", appeal_body(policy, "c-4", "ap-4"), format="json")
    assert opened.status_code == 201 and opened.json()["original_labels"] == ["violating"]
    second = member_of("reviewer", "second-reviewer")
    appeals_queue.members.add(second)

    html = decide(logged_in(second), appeals_queue, "violating")

    section = appeal_section(html)
    assert re.search(
        r'Gold label \(Reviewer consensus\):\s*<strong class="appeal-labels"><bdi>Violating</bdi></strong>', section
    )
    assert "it was a joke" in section
    assert "first-reviewer" not in html and "private rationale" not in html
    assert Appeal.objects.get().status == AppealStatus.UPHELD


def test_the_claim_api_carries_the_same_appeal_as_the_page(make_token, policy, appeals_queue) -> None:
    reviewer = member_of("reviewer", "rev-a")
    appeals_queue.members.add(reviewer)
    auto_actioned(policy, "c-5")
    appeals_api(make_token).post("/api/v1/appeals", appeal_body(policy, "c-5", "ap-5", "not\u202eme"), format="json")
    client = APIClient()
    client.force_authenticate(reviewer)
    claimed = client.post(f"/api/v1/queues/{appeals_queue.pk}/claim").json()
    assert [(a["statement"], a["original_labels"], a["by_model"], a["score"]) for a in claimed["appeals"]] == [
        ("not\u202eme", ["Violating"], True, 0.97)
    ]
    assert {"field": "appeal statement", "characters": ["right-to-left override"]} in claimed["hidden_characters"]


def test_a_blind_appeals_queue_shows_that_a_model_acted_but_not_which_or_its_score(
    make_token, policy, appeals_queue
) -> None:
    appeals_queue.blind_review = True
    appeals_queue.save()
    reviewer = member_of("reviewer", "rev-a")
    appeals_queue.members.add(reviewer)
    auto_actioned(policy, "c-6", score=0.9731)
    appeals_api(make_token).post("/api/v1/appeals", appeal_body(policy, "c-6", "ap-6"), format="json")
    html = logged_in(reviewer).post(f"/queues/{appeals_queue.pk}/work", follow=True).content.decode()
    section = appeal_section(html)
    assert "Automatic action by a model (which, and its score, are hidden on this blind-review queue)" in section
    assert "tox-bert" not in html and "0.97" not in html and "2026.11" not in html


def test_ordinary_work_and_honeypots_carry_no_appeal_and_an_appeals_queue_gets_no_honeypots(
    policy, queue, appeals_queue
) -> None:
    appeals_queue.honeypot_rate = 0.5
    appeals_queue.save()
    ReviewTaskFactory.create_batch(2, policy=policy, queue=appeals_queue, reason=TaskReason.APPEAL)
    assert honeypots_top_up(queue=appeals_queue) == 0
    reviewer = UserFactory(username="rev-a")
    queue.members.add(reviewer)
    ReviewTaskFactory(policy=policy, queue=queue)
    html = logged_in(reviewer).post(f"/queues/{queue.pk}/work", follow=True).content.decode()
    assert 'data-task="' in html and 'class="appeal"' not in html


def decided_appeal(policy, reviewer: User, queue: Queue, external_id: str, label: str) -> None:  # type: ignore[no-untyped-def]
    auto_actioned(policy, external_id)
    appeal_open(
        source="comments",
        external_id=external_id,
        policy_key=policy.key,
        external_ref=f"ap-{external_id}",
        statement="<b>please</b> look again",
        actor=SYSTEM,
    )
    claim = task_claim_next(reviewer=reviewer, queue=queue)
    annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label])


def test_leads_see_appeals_per_policy_and_the_quality_page_counts_only_the_selected_policy(
    policy, appeals_queue, monkeypatch
) -> None:
    other = PolicyFactory(key="spam", name="Spam")
    reviewer = UserFactory(username="rev-a")
    decided_appeal(policy, reviewer, appeals_queue, "h-1", "not_violating")  # overturned
    decided_appeal(other, reviewer, appeals_queue, "s-1", "violating")  # upheld
    decided_appeal(other, reviewer, appeals_queue, "s-2", "violating")  # upheld
    lead = logged_in(member_of("policy_lead", "lead"))

    for key, shown, hidden in (("spam", "Spam", "Harassment"), ("harassment", "Harassment", "Spam")):
        quality = lead.get(f"/lead/quality/?policy={key}").content.decode()
        overturns = re.search(r'<section aria-labelledby="appeals-h">.*?</section>', quality, re.S).group(0)
        rows = re.findall(
            r"<tr><td>(policy|model)</td><td>(?:<bdi>)?([^<]*)(?:</bdi>)?</td>"
            r'<td class="num">(\d+)</td><td class="num">(\d+)</td>',
            overturns,
        )
        decided, overturned = {"spam": ("2", "0"), "harassment": ("1", "1")}[key]
        assert rows == [("policy", shown, decided, overturned), ("model", "tox-bert@2026.11", decided, overturned)]
        assert hidden not in overturns

    listing = lead.get("/lead/appeals/?status=upheld").content.decode()
    rows = re.search(r'<table class="data" id="appeals">.*?</table>', listing, re.S).group(0)
    assert rows.count("<tr>") == 3  # header and the two upheld appeals
    assert "s-1" in rows and "s-2" in rows and "h-1" not in rows
    assert "&lt;b&gt;please&lt;/b&gt; look again" in rows and "<b>please" not in rows
    assert "Original decision upheld" in rows
    assert "Appeals are reviewed in" in listing
    assert lead.get("/lead/appeals/?before=x").status_code == 400

    monkeypatch.setattr(labeling.views, "APPEALS_PAGE", 2)
    first_page = lead.get("/lead/appeals/").content.decode()
    older = re.search(r'<a href="\?before=(\d+)">Older appeals</a>', first_page).group(1)
    assert re.findall(r"<bdi>comments</bdi> / <bdi>(\S+?)</bdi>", first_page) == ["s-2", "s-1"]
    second_page = lead.get(f"/lead/appeals/?before={older}").content.decode()
    assert re.findall(r"<bdi>comments</bdi> / <bdi>(\S+?)</bdi>", second_page) == ["h-1"]
    assert "Older appeals" not in second_page
    assert logged_in(reviewer).get("/lead/appeals/").status_code == 403
