"""Who may reach what: every URL of the project × every role, generated from the URL conf.

A new URL without an entry in MATRIX fails `test_every_url_has_a_rule`, so nobody can add an
endpoint without deciding who may use it.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from labeling.labelstudio.services import connection_create
from labeling.llm.services.drafts import policy_draft_create
from labeling.models import Adjudication
from labeling.services.annotations import annotation_submit
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM
from reviewapp.models import BulkAction, SavedSearch
from reviewapp.services.claims import task_claim_next
from reviewapp.services.ingest_jobs import ingest_job_create
from reviewapp.services.tokens import token_create
from tests.activelearning.test_django_helpers import permission_objects as al_world
from tests.exports.world import export_world
from tests.factories import ContentItemFactory, ReviewTaskFactory, RoutingRuleFactory, UserFactory

ROLES = ("anonymous", "reviewer", "outsider", "lead", "admin", "upstream_token", "reviewer_token")
OK, DENIED, LOGIN = "ok", "denied", "login"
PUBLIC = dict.fromkeys(ROLES, OK)
PAGE = {
    "anonymous": LOGIN,
    "reviewer": OK,
    "outsider": OK,
    "lead": OK,
    "admin": OK,
    "upstream_token": LOGIN,
    "reviewer_token": LOGIN,
}
QUEUE_PAGE = {**PAGE, "outsider": DENIED}  # reviewers outside the queue get 404
LEAD_PAGE = {**PAGE, "reviewer": DENIED, "outsider": DENIED}
REVIEWER_API = {
    "anonymous": DENIED,
    "reviewer": OK,
    "outsider": DENIED,
    "lead": OK,
    "admin": OK,
    "upstream_token": DENIED,
    "reviewer_token": OK,
}
UPSTREAM_API = {**dict.fromkeys(ROLES, DENIED), "upstream_token": OK}
ADMIN = {**dict.fromkeys(ROLES, LOGIN), "admin": OK, "lead": OK}
LEAD_API = {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}  # ActsForLead: a reviewer's token is refused
ADMIN_PAGE = {**PAGE, "reviewer": DENIED, "outsider": DENIED, "lead": DENIED}  # the product's admin pages

# url name → (method, expected outcome per role)
MATRIX: dict[str, tuple[str, dict[str, str]]] = {
    "home": ("get", PAGE),
    "theme-set": ("post", PUBLIC),  # a display preference of the browser: the login page has the form too
    "queue-work": ("get", QUEUE_PAGE),
    "task-submit": ("post", QUEUE_PAGE),
    "task-skip": ("post", QUEUE_PAGE),
    "task-escalate": ("post", QUEUE_PAGE),
    "task-heartbeat": ("post", QUEUE_PAGE),
    "task-reveal": ("post", QUEUE_PAGE),
    "annotation-undo": ("post", PAGE),  # only ever acts on the requester's own answers
    "adjudication-list": ("get", LEAD_PAGE),
    "adjudication-bulk-confirm": ("post", LEAD_PAGE),
    "adjudication-detail": ("get", LEAD_PAGE),
    "adjudication-decide": ("post", LEAD_PAGE),
    "adjudication-send-back": ("post", LEAD_PAGE),
    "gold-history": ("get", LEAD_PAGE),
    "appeal-list": ("get", LEAD_PAGE),
    "appeals-queue-create": ("post", LEAD_PAGE),
    "item-audit-export": ("get", LEAD_PAGE),
    "item-search": ("get", LEAD_PAGE),
    "item-detail": ("get", LEAD_PAGE),
    "saved-search-create": ("post", LEAD_PAGE),
    # Only its owner may delete a saved search (the world's belongs to the lead): the admin gets 404.
    "saved-search-delete": ("post", {**LEAD_PAGE, "admin": DENIED}),
    # Bulk actions over a search: lead pages, and the API for a lead's session or personal token (items:write).
    "item-bulk-confirm": ("get", LEAD_PAGE),
    "item-bulk-run": ("post", LEAD_PAGE),
    "item-bulk-result": ("get", LEAD_PAGE),
    "api-items-bulk": ("post", LEAD_API),
    # Feedback: everyone's own outcomes and notifications; an item's comments for leads and the
    # reviewers who worked on the item (the world's item has no task: reviewers get 404).
    "outcomes": ("get", PAGE),
    "notifications": ("get", PAGE),
    "notifications-read": ("post", PAGE),
    "notifications-unread": ("get", PAGE),
    "item-comments": ("get", LEAD_PAGE),
    "item-comment-create": ("post", LEAD_PAGE),
    "tokens": ("get", ADMIN_PAGE),
    "token-revoke": ("post", ADMIN_PAGE),
    "labelstudio-connections": ("get", LEAD_PAGE),
    "labelstudio-connection-new": ("post", LEAD_PAGE),
    "labelstudio-test": ("post", LEAD_PAGE),
    "labelstudio-sync-project": ("post", LEAD_PAGE),
    "labelstudio-push": ("post", LEAD_PAGE),
    "labelstudio-pull": ("post", LEAD_PAGE),
    "labelstudio-webhook": ("post", dict.fromkeys(ROLES, DENIED)),  # only Label Studio, with its secret
    "quality": ("get", LEAD_PAGE),
    "quality-refresh": ("post", LEAD_PAGE),
    "login": ("get", PUBLIC),
    "logout": ("post", dict.fromkeys(ROLES, LOGIN)),  # logging out lands on the login page
    "password_change": ("get", PAGE),
    "password_change_done": ("get", PAGE),
    "api-decisions": ("post", UPSTREAM_API),
    "api-ingest-jobs": ("post", UPSTREAM_API),
    "api-ingest-job": ("get", UPSTREAM_API),  # only the token that created the job
    "api-appeals": ("post", {**dict.fromkeys(ROLES, DENIED), "upstream_token": OK}),
    "api-items": ("get", UPSTREAM_API),  # a service token with items:read; people use the lead pages
    "api-queue-claim": ("post", {**REVIEWER_API, "outsider": DENIED}),
    "api-outcomes": ("get", {**REVIEWER_API, "outsider": OK}),
    "api-notifications": ("get", {**REVIEWER_API, "outsider": OK}),
    "api-notifications-read": ("post", {**REVIEWER_API, "outsider": OK}),
    # Leads, and reviewers who worked on the item (not the world's reviewer: its token gets 404 too).
    "api-item-comments": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-task-annotations": ("post", REVIEWER_API),
    "api-task-lease": ("post", REVIEWER_API),
    "api-task-release": ("post", REVIEWER_API),
    "api-task-escalate": ("post", REVIEWER_API),
    # People: a reviewer's onboarding set in a queue they work; the lead's reviewer pages.
    "onboarding": ("get", QUEUE_PAGE),
    "onboarding-answer": ("post", QUEUE_PAGE),
    "reviewer-list": ("get", LEAD_PAGE),
    "reviewer-detail": ("get", LEAD_PAGE),
    "reviewer-pause": ("post", LEAD_PAGE),
    "reviewer-resume": ("post", LEAD_PAGE),
    "api-queue-onboarding": ("get", {**REVIEWER_API, "outsider": DENIED}),
    "api-queue-onboarding-answers": ("post", {**REVIEWER_API, "outsider": DENIED}),
    # A lead's session or a lead's token with queues:write (none of the test tokens is a lead's).
    "api-reviewer-pause": ("post", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-reviewer-resume": ("post", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    # Active learning: lead pages; the API also takes tokens with models:write (none of the test roles has it).
    "al-models": ("get", LEAD_PAGE),
    "al-online": ("get", LEAD_PAGE),
    "al-round-start": ("post", LEAD_PAGE),
    "al-run": ("get", LEAD_PAGE),
    "al-run-cancel": ("post", LEAD_PAGE),
    "al-proposal-approve": ("post", LEAD_PAGE),
    "al-proposal-reject": ("post", LEAD_PAGE),
    "al-version-deploy": ("post", LEAD_PAGE),
    "al-policy-rollback": ("post", LEAD_PAGE),
    "al-label-error-runs": ("get", LEAD_PAGE),
    "al-label-error-run": ("get", LEAD_PAGE),
    "al-label-error-send": ("post", LEAD_PAGE),
    "api-models": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-online-metrics": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-model-detail": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    # Also tokens with models:read (bundle) and models:predict (predict); none of the test roles has them.
    "api-model-artifact": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-model-predict": ("post", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-rounds": ("post", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-round-detail": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-thresholds": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-label-error-run-detail": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-drift": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-threshold-approve": ("post", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-threshold-reject": ("post", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-model-deploy": ("post", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-model-rollback": ("post", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),
    "api-schema": ("get", PUBLIC),
    "api-docs": ("get", PUBLIC),
    "healthz": ("get", PUBLIC),
    "metrics": ("get", {**dict.fromkeys(ROLES, DENIED), "lead": OK, "admin": OK}),  # staff or metrics:read token
    "ops": ("get", LEAD_PAGE),  # leads and staff
    "readyz": ("get", PUBLIC),
    # Gold datasets: lead pages, and an API for service tokens with export:read / export:write only.
    "dataset-list": ("get", LEAD_PAGE),
    "dataset-new": ("get", LEAD_PAGE),
    "dataset-detail": ("get", LEAD_PAGE),
    "dataset-version-build": ("post", LEAD_PAGE),
    "dataset-build-status": ("get", LEAD_PAGE),
    "dataset-version": ("get", LEAD_PAGE),
    "dataset-version-download": ("get", LEAD_PAGE),
    "dataset-export-start": ("post", LEAD_PAGE),
    "dataset-export-status": ("get", LEAD_PAGE),
    "dataset-export-file": ("get", LEAD_PAGE),
    "api-datasets": ("get", dict.fromkeys(ROLES, DENIED)),
    "api-dataset": ("get", dict.fromkeys(ROLES, DENIED)),
    "api-dataset-versions": ("post", dict.fromkeys(ROLES, DENIED)),
    "api-dataset-version": ("get", dict.fromkeys(ROLES, DENIED)),
    "api-dataset-export": ("get", dict.fromkeys(ROLES, DENIED)),
    "api-dataset-diff": ("get", dict.fromkeys(ROLES, DENIED)),
    "api-snapshot-build": ("get", dict.fromkeys(ROLES, DENIED)),
    "api-export-job": ("get", dict.fromkeys(ROLES, DENIED)),
    "api-export-download": ("get", dict.fromkeys(ROLES, DENIED)),
    # LLM pre-labels: a lead page.
    "llm:prelabels-list": ("get", LEAD_PAGE),
    "llm:prelabels-update": ("post", LEAD_PAGE),
    # LLM reviewers: lead pages.
    "llm:reviewers": ("get", LEAD_PAGE),
    "llm:reviewer-new": ("get", LEAD_PAGE),
    "llm:reviewer": ("get", LEAD_PAGE),
    "llm:reviewer-edit": ("get", LEAD_PAGE),
    "llm:run-start": ("post", LEAD_PAGE),
    "llm:run": ("get", LEAD_PAGE),
    "llm:run-cancel": ("post", LEAD_PAGE),
    # Policy drafts: lead pages.
    "llm:draft-list": ("get", LEAD_PAGE),
    "llm:draft-new": ("get", LEAD_PAGE),
    "llm:draft-preview": ("post", LEAD_PAGE),
    "llm:draft-detail": ("get", LEAD_PAGE),
    "llm:draft-edit": ("get", LEAD_PAGE),
    "llm:draft-evaluate": ("post", LEAD_PAGE),
    "llm:draft-publish": ("post", LEAD_PAGE),
    "llm:draft-request-review": ("post", LEAD_PAGE),
    # Policy lifecycle: lead pages, and a REST API for leads (session or a lead's token with policies:write).
    "policy-list": ("get", LEAD_PAGE),
    "policy-new": ("post", LEAD_PAGE),
    "api-policies": ("post", LEAD_API),
    "policy-detail": ("get", LEAD_PAGE),
    "policy-diff": ("get", LEAD_PAGE),
    "api-policy-drafts": ("post", LEAD_API),
    "api-policy-draft": ("get", LEAD_API),
    "api-policy-draft-request-review": ("post", LEAD_API),
    "api-policy-draft-publish": ("post", LEAD_API),
    "api-policy-versions": ("get", LEAD_API),
    "api-policy-diff": ("get", LEAD_API),
    # Queues and routing: lead pages, and an API for a lead's session or a lead's token with queues:write
    # (the test roles' tokens lack that scope or a lead; tests/reviewapp/test_queue_pages.py covers the tokens).
    "queue-list": ("get", LEAD_PAGE),
    "queue-new": ("post", LEAD_PAGE),
    "queue-detail": ("get", LEAD_PAGE),
    "queue-edit": ("post", LEAD_PAGE),
    "queue-member-add": ("post", LEAD_PAGE),
    "queue-member-remove": ("post", LEAD_PAGE),
    "routing-rule-list": ("get", LEAD_PAGE),
    "routing-rule-new": ("post", LEAD_PAGE),
    "routing-rule-edit": ("post", LEAD_PAGE),
    "api-queues": ("get", LEAD_API),
    "api-queue": ("get", LEAD_API),
    "api-queue-members": ("post", LEAD_API),
    "api-queue-member-remove": ("post", LEAD_API),
    "api-routing-rules": ("get", LEAD_API),
    "api-routing-rule": ("get", LEAD_API),
    "api-routing-estimate": ("get", LEAD_API),
    # Adjudication: the lead pages above, and an API for a lead's session or a lead's token with
    # adjudications:write (tests/labeling/test_adjudication_api.py covers the tokens).
    "api-adjudications": ("get", LEAD_API),
    "api-adjudication": ("get", LEAD_API),
    "api-adjudication-decide": ("post", LEAD_API),
    "api-adjudication-send-back": ("post", LEAD_API),
}
ADMIN_NAMESPACE = "admin"
INGEST_ROW = {"source": "s", "external_id": "e-1", "policy": "harassment", "model_name": "m", "model_version": "1"}


def all_url_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace=""):  # type: ignore[no-untyped-def]
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, entry.namespace or namespace)
            elif isinstance(entry, URLPattern) and entry.name:
                names.add(f"{namespace}:{entry.name}" if namespace else entry.name)

    walk(get_resolver().url_patterns)
    return names


def test_every_url_has_a_rule() -> None:
    missing = sorted(n for n in all_url_names() if n not in MATRIX and not n.startswith(ADMIN_NAMESPACE + ":"))
    assert not missing, f"add a permission rule to tests/test_permissions.py for: {', '.join(missing)}"


@pytest.fixture
def world(db, policy, queue, settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0
    lead_group = Group.objects.get_or_create(name="policy_lead")[0]
    users = {
        "reviewer": UserFactory(username="reviewer"),
        "outsider": UserFactory(username="outsider"),
        "lead": UserFactory(username="lead", is_staff=True),
        "admin": UserFactory(username="admin", is_staff=True, is_superuser=True),
    }
    users["lead"].groups.add(lead_group)
    queue.members.add(users["reviewer"])
    queue.required_annotations = 2
    queue.save()
    disputed = ReviewTaskFactory(policy=policy, queue=queue, priority=9)
    for name in ("lead", "admin"):
        task_claim_next(reviewer=users[name], queue=queue)
        annotation_submit(
            task_id=disputed.pk,
            reviewer=users[name],
            submission_id=uuid.uuid4(),
            labels=[(name == "lead" and "violating") or "not_violating"],
        )
    open_task = ReviewTaskFactory(policy=policy, queue=queue, priority=1)
    gold = gold_record(
        item_id=ContentItemFactory().pk,
        policy_version=policy.current_version(),
        labels=["violating"],
        source="adjudication",
        actor=SYSTEM,
    )
    ls_connection = connection_create(
        name="ls", base_url="http://127.0.0.1:9", token="t" * 40, policy=policy, queue=queue, actor=SYSTEM
    )
    upstream_token, upstream = token_create(
        name="upstream", scopes=["decisions:write", "appeals:write", "items:read"], actor=SYSTEM
    )
    ingest_job = ingest_job_create(rows=[{**INGEST_ROW, "score": 0.5}], actor=SYSTEM, token=upstream_token)
    _, personal = token_create(name="personal", scopes=["tasks:write"], user=users["reviewer"], actor=SYSTEM)
    return {
        "users": users,
        "tokens": {"upstream_token": upstream, "reviewer_token": personal},
        "kwargs": {
            "queue_id": queue.pk,
            "task_id": open_task.pk,
            "pk": Adjudication.objects.get().pk,
            "adjudication_id": Adjudication.objects.get().pk,
            "annotation_id": disputed.annotations.first().pk,
            "item_id": gold.item_id,
            "policy_id": policy.pk,
            "policy_key": policy.key,
            "connection_id": ls_connection.pk,
            "ingest_job_id": ingest_job.pk,
            "saved_search_id": SavedSearch.objects.create(user=users["lead"], name="mine", query="status=gold").pk,
            "token_id": upstream_token.pk,
            "user_id": users["reviewer"].pk,
            "routing_rule_id": RoutingRuleFactory(policy=policy, queue=queue).pk,
            "bulk_action_id": BulkAction.objects.create(key=uuid.uuid4(), action="requeue", actor_label="lead").pk,
            "draft_id": policy_draft_create(
                policy=policy,
                title="d",
                guideline="g",
                label_schema=policy.current_version().label_schema,
                actor=SYSTEM,
            ).pk,
            **llm_world(policy),  # reviewer_id, llm_run_id
            **export_world(),  # slug, version, build_id, job_id
            **al_world(policy),  # run_id, model_id, proposal_id, label_error_run_id, policy_key
        },
        "post": {"reason": "other", "policy": policy.key, "note": "n"},
    }


def llm_world(policy) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from labeling.llm.models import LLMRun, RunKind
    from labeling.llm.services.reviewers import llm_reviewer_create

    reviewer = llm_reviewer_create(name="llm", policy=policy, backend="local", model_name="gemma", actor=SYSTEM)
    run = LLMRun.objects.create(reviewer=reviewer, kind=RunKind.GOLD_SAMPLE, item_ids=[], status="done")
    return {"reviewer_id": reviewer.pk, "llm_run_id": run.pk}


def client_for(role: str, world) -> Client:  # type: ignore[no-untyped-def]
    if role in world["tokens"]:
        return Client(HTTP_AUTHORIZATION=f"Bearer {world['tokens'][role]}")
    client = Client()
    if role in world["users"]:
        client.force_login(world["users"][role])
    return client


def outcome(response) -> str:  # type: ignore[no-untyped-def]
    if response.status_code in (301, 302) and "/login/" in response.get("Location", ""):
        return LOGIN
    if response.status_code in (401, 403, 404):
        return DENIED
    assert response.status_code < 500, response.content[:500]
    return OK


def url_for(name: str, kwargs: dict) -> str:  # type: ignore[no-untyped-def]
    from django.urls import NoReverseMatch, reverse

    resolver, *namespaces, base = get_resolver(), *name.split(":")
    for namespace in namespaces:  # a namespaced name's patterns live in its namespace's resolver
        resolver = resolver.namespace_dict[namespace][1]
    for candidate in ({}, {k: v for k, v in kwargs.items()}):
        pattern = resolver.reverse_dict.getlist(base)
        try:
            needed = {k: candidate[k] for k in pattern[0][0][0][1]} if pattern else {}
            return reverse(name, kwargs=needed)
        except (NoReverseMatch, KeyError):
            continue
    raise AssertionError(f"cannot build a URL for {name}")


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_role_matrix(world, name: str) -> None:
    method, expected = MATRIX[name]
    url = url_for(name, world["kwargs"])
    for role in ROLES:
        response = getattr(client_for(role, world), method)(url, {} if method == "get" else world["post"])
        assert outcome(response) == expected[role], f"{role} {method.upper()} {url}: {response.status_code}"


def test_admin_is_staff_only(world) -> None:
    for role in ROLES:
        response = client_for(role, world).get("/admin/")
        assert outcome(response) == ADMIN[role], role


SESSION_ROLES = ("reviewer", "lead", "admin")
STATE_CHANGING = sorted(
    name
    for name, (method, expected) in MATRIX.items()
    if method == "post" and any(expected[role] == OK for role in SESSION_ROLES)
)


@pytest.mark.parametrize("name", STATE_CHANGING)
def test_state_changing_requests_of_a_session_need_the_csrf_token(world, name: str) -> None:
    """Every POST a signed-in person may make, page or API, is refused without the CSRF token:
    a hostile page cannot make a reviewer's or a lead's browser act for them."""
    _, expected = MATRIX[name]
    url = url_for(name, world["kwargs"])
    for role in (r for r in SESSION_ROLES if expected[r] == OK):
        client = Client(enforce_csrf_checks=True)
        client.force_login(world["users"][role])
        response = client.post(url, world["post"])
        assert response.status_code == 403, f"{role} POST {url} without a CSRF token: {response.status_code}"
        assert b"CSRF" in response.content, response.content[:300]


def test_state_changing_list_is_not_empty() -> None:
    assert {"task-submit", "adjudication-decide", "al-round-start", "api-task-annotations"} <= set(STATE_CHANGING)
