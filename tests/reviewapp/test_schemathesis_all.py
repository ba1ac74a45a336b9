"""Property-based API testing of every operation in the OpenAPI schema, against the live server.

The schema is loaded from /api/schema/ as clients see it. The caller is a policy lead who works
the queue, with a personal token carrying every scope, so every operation is allowed (reviewer
operations need a person, threshold decisions a lead in person: this token is both). Each
operation is first called with a known-good request against seeded objects, which must succeed,
then with generated valid and invalid input, against the seeded objects and with generated path
parameters. No response may be a server error or disagree with the schema: undocumented status
codes, undocumented content types and bodies that do not match the declared response schema all
fail. Bounded: about twenty generated examples per operation, without shrinking.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from config.celery import app
from labeling.exports.jobs import export_run
from labeling.exports.models import Dataset
from labeling.exports.snapshots import SnapshotFilter, snapshot_create
from labeling.llm.services.drafts import policy_draft_create, policy_draft_publish, policy_draft_request_review
from labeling.models import Adjudication
from labeling.services.gold import gold_record
from labeling.services.onboarding import onboarding_next, onboarding_start
from reviewapp.api.views import EXAMPLE_BATCH
from reviewapp.audit import SYSTEM
from reviewapp.models import ServiceToken
from reviewapp.services.claims import task_claim_next, task_escalate
from reviewapp.services.ingest_jobs import ingest_job_create
from reviewapp.services.tokens import token_create
from tests.activelearning.test_django_helpers import permission_objects as al_world
from tests.exports.world import export_world
from tests.factories import (
    ContentItemFactory,
    PolicyFactory,
    QueueFactory,
    ReviewTaskFactory,
    RoutingRuleFactory,
    UserFactory,
)

# Slow tier: schemathesis drives every operation through a live server.
pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Generated examples per operation: (mode, against the seeded objects?) -> count.
EXAMPLES = {
    (GenerationMode.POSITIVE, True): 8,
    (GenerationMode.NEGATIVE, True): 6,
    (GenerationMode.POSITIVE, False): 4,
    (GenerationMode.NEGATIVE, False): 3,
}


@pytest.fixture
def world(transactional_db, settings, tmp_path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Seeded objects, and for each operation the path ids and a request that must succeed."""
    settings.EXPORT_DIR = tmp_path / "exports"
    lead = UserFactory(username="fuzz-lead", is_staff=True)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    policy = PolicyFactory(key="harassment")
    queue = QueueFactory(slug="harassment-review")
    queue.members.add(lead)
    QueueFactory(slug="appeals", kind="appeals")
    rule = RoutingRuleFactory(policy=policy, queue=queue)
    ReviewTaskFactory.create_batch(10, policy=policy, queue=queue, priority=5)
    lease = {"leased_by": lead, "last_leased_by": lead, "lease_expires_at": timezone.now() + timedelta(minutes=30)}
    tasks = {
        # Only the reviewer holding a task's lease may answer it, so the known-good answer is to a held task.
        "annotate": ReviewTaskFactory(policy=policy, queue=queue, priority=0, **lease),
        "escalate": ReviewTaskFactory(policy=policy, queue=queue, priority=0, **lease),
        "lease": ReviewTaskFactory(policy=policy, queue=queue, priority=0, **lease),
        "release": ReviewTaskFactory(policy=policy, queue=queue, priority=0),
    }
    golds = [
        gold_record(
            item_id=ContentItemFactory().pk,
            policy_version=policy.current_version(),
            labels=["violating"],
            source="adjudication",
            actor=SYSTEM,
        )
        for _ in range(3)
    ]
    ids: dict[str, Any] = {"queue_id": queue.pk, "routing_rule_id": rule.pk, **export_world(), **al_world(policy)}
    dataset = Dataset.objects.get(slug=ids["slug"])
    snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)  # a version to diff against
    export_run(job_id=ids["job_id"])  # a finished export file to download
    rejected = al_world(PolicyFactory(key="spam"))["proposal_id"]  # approving one leaves one to reject
    token, secret = token_create(name="fuzz", scopes=list(ServiceToken.SCOPES), user=lead, actor=SYSTEM)
    ids["ingest_job_id"] = ingest_job_create(rows=EXAMPLE_BATCH["decisions"], actor=SYSTEM, token=token).pk
    item = golds[0].item
    # Policy lifecycle: v2 published (to diff against v1), a draft to read and edit, one in review to publish.
    schema = policy.current_version().label_schema
    drafts = [
        policy_draft_create(policy=policy, title=f"d{n}", guideline="g", label_schema=schema, actor=SYSTEM)
        for n in range(3)
    ]
    policy_draft_publish(draft=policy_draft_request_review(draft=drafts[0], actor=SYSTEM), actor=SYSTEM)
    to_publish = policy_draft_create(policy=policy, title="next", guideline="g2", label_schema=schema, actor=SYSTEM)
    policy_draft_request_review(draft=to_publish, actor=SYSTEM)
    # A queue that asks for onboarding, with an attempt open for the lead, and a reviewer to pause.
    onboarding_queue = QueueFactory(slug="onboarding", onboarding_size=2)
    onboarding_queue.members.add(lead)
    ReviewTaskFactory(policy=policy, queue=onboarding_queue)
    attempt = onboarding_start(queue=onboarding_queue, reviewer=lead)
    first = onboarding_next(attempt=attempt)
    pausable = UserFactory(username="fuzz-reviewer")
    queue.members.add(pausable)
    ids["user_id"] = pausable.pk
    # Three escalated items waiting for a lead, in a queue of their own: to read, to decide, to send back.
    adjudicate = QueueFactory(slug="adjudicate")
    escalating = UserFactory(username="fuzz-escalating")
    adjudicate.members.add(escalating)
    waiting = []
    for _ in range(3):
        escalated = ReviewTaskFactory(policy=policy, queue=adjudicate)
        task_claim_next(reviewer=escalating, queue=adjudicate)
        task_escalate(task_id=escalated.pk, reviewer=escalating, note="<b>unsure</b>")
        waiting.append(Adjudication.objects.get(task=escalated).pk)
    ids["adjudication_id"] = waiting[0]
    return {
        "token": secret,
        "ids": ids,
        # operation label -> (path ids beyond `ids`, query, body, expected status) of a known-good request
        "valid": {
            "GET /api/v1/adjudications": ({}, {"policy": "harassment", "page_size": 2}, None, 200),
            "GET /api/v1/adjudications/{adjudication_id}": ({}, None, None, 200),
            "POST /api/v1/adjudications/{adjudication_id}/decide": (
                {"adjudication_id": waiting[1]},
                None,
                {"labels": ["violating"], "severity": "high", "note": "n"},
                201,
            ),
            "POST /api/v1/adjudications/{adjudication_id}/send-back": (
                {"adjudication_id": waiting[2]},
                None,
                {"note": "Read the second turn."},
                200,
            ),
            "POST /api/v1/appeals": (
                {},
                None,
                {"source": item.source, "external_id": item.external_id, "policy": "harassment", "appeal_id": "a-1"},
                201,
            ),
            "GET /api/v1/datasets/": ({}, {"page_size": 10}, None, 200),
            "POST /api/v1/datasets/": ({}, None, {"slug": "fuzz-new", "name": "Fuzz", "filters": {}}, 201),
            "GET /api/v1/datasets/{slug}/": ({}, None, None, 200),
            # A dataset's split rule and filters never change: these two only ever refuse, and say why.
            "PATCH /api/v1/datasets/{slug}/": ({}, None, {"group_by": "item"}, 409),
            "PUT /api/v1/datasets/{slug}/": ({}, None, {"group_by": "item"}, 409),
            "GET /api/v1/datasets/{slug}/builds/{build_id}": ({}, None, None, 200),
            "GET /api/v1/datasets/{slug}/versions/": ({}, None, None, 200),
            "POST /api/v1/datasets/{slug}/versions/": ({}, None, {}, 201),
            "GET /api/v1/datasets/{slug}/versions/{version}/": ({}, None, None, 200),
            "GET /api/v1/datasets/{slug}/versions/{version}/diff": ({"version": 2}, {"against": 1}, None, 200),
            "GET /api/v1/datasets/{slug}/versions/{version}/export": ({}, {"format": "label-studio"}, None, 200),
            "POST /api/v1/decisions": ({}, None, EXAMPLE_BATCH, 200),
            "POST /api/v1/ingest-jobs": ({}, None, EXAMPLE_BATCH, 202),
            "GET /api/v1/ingest-jobs/{ingest_job_id}": ({}, None, None, 200),
            "GET /api/v1/items": ({}, {"source": item.source, "external_id": item.external_id}, None, 200),
            "POST /api/v1/items/bulk": (
                {},
                None,
                {
                    "key": str(uuid.uuid4()),
                    "action": "reprioritise",
                    "priority": 3,
                    "filters": {"policy": "harassment"},
                },
                201,
            ),
            "GET /api/v1/drift": ({}, {"policy": "harassment"}, None, 200),
            "GET /api/v1/items/{item_id}/comments": ({"item_id": item.pk}, None, None, 200),
            "POST /api/v1/items/{item_id}/comments": ({"item_id": item.pk}, None, {"body": "Look at @fuzz-lead"}, 201),
            "GET /api/v1/notifications": ({}, None, None, 200),
            "POST /api/v1/notifications/read": ({}, None, {}, 200),
            "GET /api/v1/outcomes": ({}, None, None, 200),
            "POST /api/v1/policies": (
                {},
                None,
                {"key": "fuzz-policy", "name": "Fuzz", "guideline": "g", "label_schema": schema},
                201,
            ),
            "GET /api/v1/policies/{policy_key}/diff": ({"policy_key": "harassment"}, {"a": 1, "b": 2}, None, 200),
            "POST /api/v1/policies/{policy_key}/drafts": (
                {"policy_key": "harassment"},
                None,
                {"title": "t", "guideline": "g", "label_schema": schema},
                201,
            ),
            "GET /api/v1/policies/{policy_key}/versions": ({"policy_key": "harassment"}, None, None, 200),
            "GET /api/v1/policy-drafts/{draft_id}": ({"draft_id": drafts[1].pk}, None, None, 200),
            "PUT /api/v1/policy-drafts/{draft_id}": (
                {"draft_id": drafts[1].pk},
                None,
                {"title": "t2", "guideline": "g", "label_schema": schema},
                200,
            ),
            "POST /api/v1/policy-drafts/{draft_id}/publish": ({"draft_id": to_publish.pk}, None, {}, 201),
            "POST /api/v1/policy-drafts/{draft_id}/request-review": ({"draft_id": drafts[2].pk}, None, None, 200),
            "GET /api/v1/queues/{queue_id}/onboarding": ({"queue_id": onboarding_queue.pk}, None, None, 200),
            "POST /api/v1/queues/{queue_id}/onboarding": ({"queue_id": onboarding_queue.pk}, None, None, 200),
            "POST /api/v1/queues/{queue_id}/onboarding/answers": (
                {"queue_id": onboarding_queue.pk},
                None,
                {"attempt": attempt.pk, "gold": first.gold.pk if first else 0, "labels": ["violating"]},
                201,
            ),
            "POST /api/v1/reviewers/{user_id}/pause": ({}, None, {"queue": queue.pk, "reason": "coaching"}, 200),
            "POST /api/v1/reviewers/{user_id}/resume": ({}, None, {"queue": queue.pk, "reason": "done"}, 200),
            "GET /api/v1/exports/{job_id}": ({}, None, None, 200),
            "GET /api/v1/exports/{job_id}/download": ({}, None, None, 200),
            "GET /api/v1/label-error-runs/{label_error_run_id}": ({}, {"scores": "true"}, None, 200),
            "GET /api/v1/models": ({}, {"policy": "harassment"}, None, 200),
            "GET /api/v1/models/{model_id}": ({}, None, None, 200),
            "POST /api/v1/models/{model_id}/deploy": ({}, None, {"mode": "shadow", "shadow_days": 3}, 200),
            # Nothing was live before, so there is nothing to roll back to: refused, saying why.
            "POST /api/v1/models/{policy_key}/rollback": ({"policy_key": "harassment"}, None, None, 409),
            "GET /api/v1/online-metrics": ({}, {"policy": "harassment"}, None, 200),
            "GET /api/v1/models/{model_id}/artifact": ({}, None, None, 200),
            "POST /api/v1/models/{policy_key}/predict": (
                {},
                None,
                {"items": [{"text": "you are kind", "id": "a"}, {"text": "shut up"}], "version": 1},
                200,
            ),
            "POST /api/v1/queues/{queue_id}/claim": ({}, None, None, 200),
            "GET /api/v1/queues": ({}, None, None, 200),
            "POST /api/v1/queues": ({}, None, {"slug": "fuzz-queue", "name": "Fuzz queue"}, 201),
            "GET /api/v1/queues/{queue_id}": ({}, None, None, 200),
            "PATCH /api/v1/queues/{queue_id}": ({}, None, {"sla_minutes": 30}, 200),
            "POST /api/v1/queues/{queue_id}/members": ({}, None, {"username": "fuzz-lead"}, 200),
            "POST /api/v1/queues/{queue_id}/members/remove": ({}, None, {"username": "nobody"}, 200),
            "GET /api/v1/routing-rules": ({}, None, None, 200),
            "POST /api/v1/routing-rules": (
                {},
                None,
                {"policy": "harassment", "model_name": "fuzz", "auto_action": 0.9, "queue": "harassment-review"},
                201,
            ),
            "GET /api/v1/routing-rules/estimate": ({}, {"policy": "harassment", "auto_action": 0.8}, None, 200),
            "GET /api/v1/routing-rules/{routing_rule_id}": ({}, None, None, 200),
            "PATCH /api/v1/routing-rules/{routing_rule_id}": ({}, None, {"auto_action": 0.95}, 200),
            "POST /api/v1/rounds": ({}, None, {"policy": "harassment", "encoder": "hashed", "budget": 5}, 202),
            "GET /api/v1/rounds/{run_id}": ({}, None, None, 200),
            "POST /api/v1/tasks/{task_id}/annotations": (
                {"task_id": tasks["annotate"].pk},
                None,
                {"submission_id": str(uuid.uuid4()), "labels": ["violating"], "handle_time_ms": 3000},
                201,
            ),
            "POST /api/v1/tasks/{task_id}/escalate": ({"task_id": tasks["escalate"].pk}, None, {"note": "n"}, 204),
            "POST /api/v1/tasks/{task_id}/lease": ({"task_id": tasks["lease"].pk}, None, None, 200),
            "POST /api/v1/tasks/{task_id}/release": ({"task_id": tasks["release"].pk}, None, {"reason": "r"}, 204),
            "GET /api/v1/thresholds": ({}, {"policy": "harassment"}, None, 200),
            "POST /api/v1/thresholds/{proposal_id}/approve": ({}, None, {"note": "ok"}, 200),
            "POST /api/v1/thresholds/{proposal_id}/reject": ({"proposal_id": rejected}, None, {}, 200),
        },
    }


@pytest.fixture
def no_queued_jobs():  # type: ignore[no-untyped-def]
    """Rounds and exports started here enqueue Celery tasks for rows that will not outlive the test."""
    yield
    app.control.purge()


def failures_of(case, response, headers: dict[str, str]) -> list[Failure]:  # type: ignore[no-untyped-def]
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        return list(group.exceptions)
    except Failure as failure:
        return [failure]
    return []


def describe(case, response, failure: Failure | None, headers: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    what = f"{failure.title}: {failure.message[:600]}" if failure else "unexpected status"
    return (
        f"{case.operation.label}: {what}\n  got {response.status_code} {response.text[:300]!r}\n"
        f"  {case.as_curl_command(headers)[:500]}"
    )


def fuzz(operation, base_url: str, headers: dict[str, str], fixed: dict[str, Any]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Call one operation with generated input in every (mode, seeded?) mix; its distinct failures."""
    found: dict[str, str] = {}
    for (mode, seeded), examples in EXAMPLES.items():
        if seeded and not fixed:
            continue

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed if seeded else {}))
        @hypothesis_settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first example as it was
            suppress_health_check=list(HealthCheck),
        )
        def call(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=base_url, headers=headers)
            for failure in failures_of(case, response, headers):
                found.setdefault(f"{operation.label}: {failure.title}", describe(case, response, failure, headers))

        call()
    return found


def test_every_operation_succeeds_and_conforms(world, live_server, no_queued_jobs) -> None:  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert sorted(op.label for op in operations) == sorted(world["valid"]), "every operation needs a valid request"
    headers = {"Authorization": f"Bearer {world['token']}"}
    failures: dict[str, str] = {}
    for operation in operations:
        extra_ids, query, body, expected = world["valid"][operation.label]
        ids = {name: value for name, value in world["ids"].items() if "{" + name + "}" in operation.path}
        ids.update(extra_ids)
        json_body = {} if body is None else {"body": body, "media_type": "application/json"}
        case = operation.Case(path_parameters=ids, query=query, **json_body)
        response = case.call(base_url=live_server.url, headers=headers)
        for failure in failures_of(case, response, headers):
            failures[f"{operation.label}: {failure.title}"] = describe(case, response, failure, headers)
        if response.status_code != expected:
            failures[f"{operation.label}: status"] = describe(case, response, None, headers) + f" (want {expected})"
        failures.update(fuzz(operation, live_server.url, headers, ids))
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures.values())


@pytest.mark.parametrize("url", ["/api/v1/models", "/api/v1/datasets/", "/", "/lead/quality/"])
def test_a_nul_in_the_url_is_a_400_not_a_server_error(url, db) -> None:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="nul-lead", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(lead)

    in_value = client.get(url, {"policy": "\x00B"})
    in_name = client.get(f"{url}?a%00=1")

    for response in (in_value, in_name):
        assert response.status_code == 400
        assert "NUL" in response.content.decode()
    assert in_value["Content-Type"] == ("application/json" if url.startswith("/api/") else "text/plain; charset=utf-8")


def test_unknown_api_urls_answer_json_404(db) -> None:  # type: ignore[no-untyped-def]
    response = Client().get("/api/v1/models/not-a-number")

    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "No such endpoint or object."}
    assert Client().get("/no-such-page").headers["Content-Type"].startswith("text/html")


def test_validation_errors_have_a_detail_and_the_field_errors(make_token, policy, queue) -> None:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="shape-lead", is_superuser=True)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'], user=lead)}")
    task = ReviewTaskFactory(policy=policy, queue=queue)

    response = client.post(
        f"/api/v1/tasks/{task.pk}/annotations", {"labels": ["a\x00"]}, content_type="application/json"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["errors"]["submission_id"] == ["This field is required."]
    assert body["detail"].startswith("Invalid input: ") and "submission_id: This field is required" in body["detail"]
    assert "labels.0: Null characters are not allowed" in body["detail"]
