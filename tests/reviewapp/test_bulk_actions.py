"""Bulk actions over an item search: each action, its refusals, idempotency by key, audit, the
confirmation pages and POST /api/v1/items/bulk."""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import GoldSource
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM, Actor
from reviewapp.errors import Conflict, Invalid
from reviewapp.models import AuditEvent, BulkAction, Notification, ReviewTask, TaskAssignment, TaskReason, TaskStatus
from reviewapp.services import bulk
from reviewapp.services.assignments import review_task_assign_by_id
from reviewapp.services.bulk import BulkParams, bulk_action_preview, bulk_action_run
from reviewapp.services.search import ItemFilters
from reviewapp.services.tokens import token_create
from tests.factories import ContentItemFactory, QueueFactory, ReviewTaskFactory, UserFactory
from tests.worker import test_database_url as worker_database_url
from tests.worker import wait_for

TARGETS = ItemFilters(text="bulk target")


def lead_user(username: str = "bulk-lead") -> User:
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@pytest.fixture
def lead(db) -> User:  # type: ignore[no-untyped-def]
    return lead_user()


@pytest.fixture
def tasks(policy, queue) -> list[ReviewTask]:  # type: ignore[no-untyped-def]
    """Three open tasks whose items match TARGETS, and one open task that does not."""
    ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="something else"))
    return [
        ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text=f"bulk target {n}"))
        for n in range(3)
    ]


def run(action: str, actor: User, params: BulkParams | None = None, key: uuid.UUID | None = None, filters=TARGETS):  # type: ignore[no-untyped-def]
    return bulk_action_run(
        key=key or uuid.uuid4(),
        action=action,
        params=params or BulkParams(),
        filters=filters,
        query="text=bulk+target",
        actor=Actor.of(actor),
    )


def bulk_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=f"bulk.{action}").order_by("item_id"))


class TestRequeue:
    def test_it_ends_claims_cancels_assignments_restarts_the_due_time_and_audits_each_item(
        self, tasks, lead, queue
    ) -> None:
        holder, assignee = UserFactory(), UserFactory()
        queue.members.add(assignee)
        stuck = tasks[0]
        ReviewTask.objects.filter(pk=stuck.pk).update(
            leased_by=holder, lease_expires_at=timezone.now() + timedelta(hours=5), due_at=timezone.now()
        )
        review_task_assign_by_id(task_id=tasks[1].pk, reviewers=[assignee], reason="assigned", note="", actor=SYSTEM)

        result = run("requeue", lead)

        assert (result.replayed, result.bulk.matched, result.bulk.changed, result.bulk.skipped) == (False, 3, 3, [])
        stuck.refresh_from_db()
        assert stuck.leased_by is None and stuck.lease_expires_at is None and stuck.status == TaskStatus.OPEN
        assert stuck.due_at > timezone.now() + timedelta(minutes=queue.sla_minutes - 5)
        assert not TaskAssignment.objects.filter(cancelled_at__isnull=True).exists()
        assert not ReviewTask.objects.get(pk=tasks[1].pk).assigned
        events = bulk_events("requeue")
        assert sorted(e.item_id for e in events) == sorted(t.item_id for t in tasks)  # one per item
        assert {(e.object_type, e.object_id, e.actor_label) for e in events} == {
            ("bulk_action", str(result.bulk.pk), lead.username)
        }
        assert AuditEvent.objects.filter(action="bulk_action.run", object_id=str(result.bulk.pk)).count() == 1

    def test_the_same_key_applies_once_and_returns_the_first_result(self, tasks, lead) -> None:
        key = uuid.uuid4()
        first = run("requeue", lead, key=key)
        ReviewTask.objects.filter(pk=tasks[0].pk).update(leased_by=lead, lease_expires_at=timezone.now())

        again = run("requeue", lead, key=key)

        assert again.replayed and again.bulk.pk == first.bulk.pk and again.bulk.changed == 3
        assert len(bulk_events("requeue")) == 3 and BulkAction.objects.count() == 1
        assert ReviewTask.objects.get(pk=tasks[0].pk).leased_by == lead  # nothing ran the second time

    def test_a_used_key_for_another_action_is_a_conflict(self, tasks, lead) -> None:
        key = uuid.uuid4()
        run("requeue", lead, key=key)
        with pytest.raises(Conflict):
            run("reprioritise", lead, BulkParams(priority=5), key=key)

    def test_items_without_an_open_task_are_refused_with_a_message_and_nothing_stored(self, lead, policy) -> None:
        ContentItemFactory(text="bulk target without work")
        with pytest.raises(Invalid, match="No matching item has an open task: nothing to requeue"):
            run("requeue", lead)
        assert not BulkAction.objects.exists()

    def test_more_than_the_cap_is_refused_whole(self, tasks, lead, monkeypatch) -> None:
        monkeypatch.setattr(bulk, "BULK_MAX_TASKS", 2)
        assert bulk_action_preview(action="requeue", filters=TARGETS).over_cap
        with pytest.raises(Invalid, match="more than 2 open tasks"):
            run("requeue", lead)
        assert not bulk_events("requeue") and not BulkAction.objects.exists()

    def test_honeypots_and_closed_tasks_are_never_taken(self, tasks, lead, policy, queue) -> None:
        ReviewTaskFactory(
            policy=policy, queue=queue, reason=TaskReason.HONEYPOT, item=ContentItemFactory(text="bulk target hp")
        )
        ReviewTask.objects.filter(pk=tasks[2].pk).update(status=TaskStatus.COMPLETED)
        assert bulk_action_preview(action="requeue", filters=TARGETS).matched == 2
        assert run("requeue", lead).bulk.changed == 2


class TestOtherActions:
    def test_move_sends_open_tasks_to_the_queue_and_skips_those_it_holds_already(self, tasks, lead, policy) -> None:
        target = QueueFactory(slug="escalations", sla_minutes=30)
        ReviewTaskFactory(policy=policy, queue=target, item=tasks[0].item)  # already open there

        result = run("move", lead, BulkParams(queue=target))

        assert (result.bulk.matched, result.bulk.changed) == (4, 2)  # the one in `target` matched too
        reasons = sorted(s["why"] for s in result.bulk.skipped)
        assert reasons == [
            "already in queue escalations",
            "queue escalations already has an open task for this item and policy",
        ]
        assert set(ReviewTask.objects.filter(pk__in=[t.pk for t in tasks[1:]]).values_list("queue", flat=True)) == {
            target.pk
        }
        event = bulk_events("move")[0]
        assert event.before == {"queue": "harassment-review"} and event.after["queue"] == "escalations"

    def test_move_refuses_an_inactive_queue(self, tasks, lead) -> None:
        with pytest.raises(Invalid, match="takes no tasks"):
            run("move", lead, BulkParams(queue=QueueFactory(slug="closed", is_active=False)))

    def test_relabel_opens_a_relabel_task_per_gold_label_once(self, tasks, lead, policy) -> None:
        relabel_queue = QueueFactory(slug="relabel")
        version = policy.current_version()
        for task in tasks[:2]:
            gold_record(
                item_id=task.item_id,
                policy_version=version,
                labels=["violating"],
                source=GoldSource.ADJUDICATION,
                actor=SYSTEM,
            )

        first = run("relabel", lead, BulkParams(queue=relabel_queue))
        second = run("relabel", lead, BulkParams(queue=relabel_queue))

        assert (first.bulk.matched, first.bulk.changed) == (2, 2)
        opened = ReviewTask.objects.filter(queue=relabel_queue, reason=TaskReason.RELABEL)
        assert sorted(opened.values_list("item_id", flat=True)) == sorted(t.item_id for t in tasks[:2])
        assert (second.bulk.changed, {s["why"] for s in second.bulk.skipped}) == (
            0,
            {"already sent for re-review since its current gold label"},
        )
        assert len(bulk_events("relabel")) == 2

    def test_relabel_without_gold_is_refused(self, tasks, lead) -> None:
        with pytest.raises(Invalid, match="No matching item has a current gold label"):
            run("relabel", lead, BulkParams(queue=QueueFactory(slug="relabel")))

    def test_assign_reserves_tasks_for_a_member_and_says_why_it_left_others(self, tasks, lead, queue, policy) -> None:
        from labeling.services.annotations import annotation_submit
        from reviewapp.services.claims import task_claim_next

        member = UserFactory(username="member")
        queue.members.add(member)
        other_queue = QueueFactory(slug="elsewhere")
        ReviewTask.objects.filter(pk=tasks[2].pk).update(queue=other_queue)
        ReviewTask.objects.filter(pk=tasks[0].pk).update(priority=100)
        task_claim_next(reviewer=member, queue=queue)
        annotation_submit(task_id=tasks[0].pk, reviewer=member, submission_id=uuid.uuid4(), labels=["violating"])
        ReviewTask.objects.filter(pk=tasks[0].pk).update(status=TaskStatus.OPEN)  # still needs answers

        result = run("assign", lead, BulkParams(reviewer=member, note="please look"))

        assert result.bulk.changed == 1
        assert TaskAssignment.objects.get().task_id == tasks[1].pk
        assert Notification.objects.get(user=member).text == "bulk-lead assigned you 1 task: please look"
        assert sorted(s["why"] for s in result.bulk.skipped) == [
            "member already answered this item",
            "member is not a member of queue elsewhere",
        ]
        again = run("assign", lead, BulkParams(reviewer=member))
        assert "already assigned to member" in {s["why"] for s in again.bulk.skipped}

    def test_reprioritise_sets_the_priority_and_skips_tasks_already_there(self, tasks, lead) -> None:
        ReviewTask.objects.filter(pk=tasks[0].pk).update(priority=7.5)
        result = run("reprioritise", lead, BulkParams(priority=7.5))
        assert (result.bulk.changed, [s["task"] for s in result.bulk.skipped]) == (2, [tasks[0].pk])
        assert set(ReviewTask.objects.filter(pk__in=[t.pk for t in tasks]).values_list("priority", flat=True)) == {7.5}
        assert {e.before["priority"] for e in bulk_events("reprioritise")} == {1.0}

    @pytest.mark.parametrize(
        ("action", "params", "message"),
        [
            ("assign", BulkParams(), "Name an active reviewer"),
            ("reprioritise", BulkParams(priority=float("nan")), "Give a priority"),
            ("move", BulkParams(), "Choose the queue"),
            ("explode", BulkParams(), "Unknown bulk action"),
        ],
    )
    def test_missing_or_bad_parameters_are_refused(self, tasks, lead, action, params, message) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(Invalid, match=message):
            run(action, lead, params)


# ---- pages ----


@pytest.fixture
def lead_client(lead) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(lead)
    return client


def confirmation(client: Client, **params: str):  # type: ignore[no-untyped-def]
    return client.get("/items/bulk/", {"text": "bulk target", **params})


def confirm_form(html: str) -> dict[str, str]:
    form = html[html.index('action="/items/bulk/run"') :]
    form = form[: form.index("</form>")]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def test_the_search_page_offers_the_bulk_form_with_its_filters(lead_client, tasks) -> None:  # type: ignore[no-untyped-def]
    html = lead_client.get("/items/", {"text": "bulk target"}).content.decode()
    assert 'action="/items/bulk/"' in html and '<input type="hidden" name="text" value="bulk target">' in html


def test_the_confirmation_shows_the_count_and_the_post_runs_once(lead_client, tasks) -> None:  # type: ignore[no-untyped-def]
    response = confirmation(lead_client, action="requeue")
    assert response.status_code == 200
    assert "Requeue: 3 open tasks" in response.content.decode()
    fields = confirm_form(response.content.decode())
    assert fields["query"] == "text=bulk+target" and uuid.UUID(fields["key"])

    done = lead_client.post("/items/bulk/run", fields, follow=True)
    assert done.status_code == 200 and "Requeue: 3 changed." in done.content.decode()
    again = lead_client.post("/items/bulk/run", fields, follow=True)
    assert "already applied" in again.content.decode()
    assert again.redirect_chain[-1][0] == done.redirect_chain[-1][0]
    assert len(bulk_events("requeue")) == 3


def test_the_confirmation_needs_a_filter_and_the_action_s_parameters(lead_client, tasks) -> None:  # type: ignore[no-untyped-def]
    assert lead_client.get("/items/bulk/", {"action": "requeue"}).status_code == 400
    response = confirmation(lead_client, action="assign", reviewer="nobody")
    assert response.status_code == 400 and "No active user is named" in response.content.decode()


def test_a_refused_run_says_why_on_the_search_page(lead_client, lead, policy) -> None:  # type: ignore[no-untyped-def]
    ContentItemFactory(text="bulk target idle")
    fields = {"key": str(uuid.uuid4()), "query": "text=bulk+target", "action": "requeue"}
    response = lead_client.post("/items/bulk/run", fields, follow=True)
    assert "No matching item has an open task" in response.content.decode()


def test_the_result_page_lists_what_was_left_and_why(lead_client, lead, tasks) -> None:  # type: ignore[no-untyped-def]
    ReviewTask.objects.filter(pk=tasks[0].pk).update(priority=3)
    result = run("reprioritise", lead, BulkParams(priority=3))
    html = lead_client.get(f"/items/bulk/{result.bulk.pk}/").content.decode()
    assert "already at priority 3" in html and tasks[0].item.external_id in html


def test_reviewers_get_403_on_the_bulk_pages(tasks, lead) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(UserFactory(username="plain-reviewer"))
    assert confirmation(client, action="requeue").status_code == 403
    assert client.post("/items/bulk/run", {"key": str(uuid.uuid4())}).status_code == 403


# ---- API ----

API = "/api/v1/items/bulk"


def api_client(user: User | None, scopes: list[str]) -> APIClient:
    _, secret = token_create(name=f"t-{uuid.uuid4().hex[:8]}", scopes=scopes, user=user, actor=SYSTEM)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def body(**extra):  # type: ignore[no-untyped-def]
    return {
        "key": str(uuid.uuid4()),
        "action": "reprioritise",
        "priority": 9,
        "filters": {"text": "bulk target"},
        **extra,
    }


def test_a_lead_token_with_items_write_runs_an_action_once(tasks, lead) -> None:  # type: ignore[no-untyped-def]
    client = api_client(lead, ["items:write"])
    request = body()
    created = client.post(API, request, format="json")
    assert created.status_code == 201, created.json()
    assert (created.json()["changed"], created.json()["replayed"]) == (3, False)
    replay = client.post(API, request, format="json")
    assert replay.status_code == 200 and replay.json()["replayed"] and replay.json()["id"] == created.json()["id"]
    assert len(bulk_events("reprioritise")) == 3
    assert bulk_events("reprioritise")[0].actor_label.startswith("token:")


def test_a_dry_run_counts_only(tasks, lead) -> None:  # type: ignore[no-untyped-def]
    response = api_client(lead, ["items:write"]).post(API, body(dry_run=True), format="json")
    assert response.json() == {"action": "reprioritise", "matched": 3, "items": 3, "over_cap": False}
    assert not BulkAction.objects.exists()


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"filters": {}}, 400, "at least one search filter"),
        ({"filters": {"status": "nonsense"}}, 400, "nonsense"),
        ({"action": "assign", "reviewer": "ghost"}, 400, "No active user"),
        ({"filters": {"text": "no such words"}}, 400, "No matching item has an open task"),
        ({"note": "lone \ud800"}, 400, "Surrogate characters are not allowed"),
    ],
)
def test_bad_requests_are_400_with_the_reason(tasks, lead, change, status, text) -> None:  # type: ignore[no-untyped-def]
    raw = json.dumps(body(**change))  # ASCII: a lone surrogate travels as its \\u escape
    response = api_client(lead, ["items:write"]).post(API, raw, content_type="application/json")
    assert response.status_code == status and text in response.content.decode()


def test_a_reviewer_s_token_or_a_lead_token_without_the_scope_is_403(tasks, lead) -> None:  # type: ignore[no-untyped-def]
    reviewer = UserFactory(username="token-reviewer")
    assert api_client(reviewer, ["items:write"]).post(API, body(), format="json").status_code == 403
    assert api_client(lead, ["items:read"]).post(API, body(), format="json").status_code == 403
    assert api_client(None, ["items:write"]).post(API, body(), format="json").status_code == 403
    assert not BulkAction.objects.exists()


# ---- the same key at once ----


def _waiting_on_bulk_actions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND query ILIKE '%%reviewapp_bulkaction%%' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.slow
def test_two_requests_with_the_same_key_at_once_apply_it_once(transactional_db, policy, queue) -> None:  # type: ignore[no-untyped-def]
    lead = lead_user("race-lead")
    tasks = [
        ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text=f"bulk target {n}"))
        for n in range(3)
    ]
    key = uuid.uuid4()
    outcomes: list[bool] = []
    failures: list[BaseException] = []

    def request() -> None:
        try:
            outcomes.append(run("reprioritise", lead, BulkParams(priority=4), key=key).replayed)
        except BaseException as error:  # reported by the assertions below, not lost in the thread
            failures.append(error)
        finally:
            connection.close()

    # A third transaction holds the key uncommitted, so both requests find no row, insert, and wait.
    with psycopg.connect(worker_database_url()) as holder:
        holder.execute(
            "INSERT INTO reviewapp_bulkaction (key, action, params, query, actor_label, matched, changed, skipped)"
            " VALUES (%s, 'reprioritise', '{}', '', 'holder', 0, 0, '[]')",
            [key],
        )
        threads = [threading.Thread(target=request) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: _waiting_on_bulk_actions() == 2 or failures, timeout=60)
        finally:
            holder.rollback()  # the key is free: one request takes it, the other then finds its result
            for thread in threads:
                thread.join(timeout=60)

    assert not failures, failures
    assert sorted(outcomes) == [False, True]
    assert BulkAction.objects.get().changed == 3 and len(bulk_events("reprioritise")) == 3
    assert set(ReviewTask.objects.filter(pk__in=[t.pk for t in tasks]).values_list("priority", flat=True)) == {4.0}
