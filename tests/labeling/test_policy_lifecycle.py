"""Policy lifecycle: draft → in review → publish (effective time, re-review choice), the diff
between versions, the once-only notice to reviewers, the policy pages and the REST API."""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.llm.services.drafts import (
    RelabelChoice,
    policy_draft_create,
    policy_draft_publish,
    policy_draft_request_review,
    policy_draft_update,
)
from labeling.models import DraftStatus, GoldLabel, Policy, PolicyDraft, PolicyNoticeSeen, PolicyPublication
from labeling.services.annotations import annotation_submit
from labeling.services.gold import gold_record
from labeling.services.policy_notices import policy_notice_take
from labeling.services.policy_versions import policy_change_summary, policy_diff
from labeling.services.relabel import gold_relabel_candidates, relabel_sample, stratified_allocation
from reviewapp.audit import SYSTEM, Actor
from reviewapp.models import AuditEvent, ReviewTask, TaskReason
from reviewapp.services.claims import task_claim_next
from reviewapp.services.tokens import token_create
from tests.factories import BINARY_SCHEMA, ContentItemFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db

V, N = "violating", "not_violating"
# A schema that retitles and redefines "violating", adds "threat", makes severity two levels.
NEW_SCHEMA = {
    "labels": [
        {"value": V, "title": "Harassing", "description": "Attacks a person."},
        {"value": N, "title": "Not violating"},
        {"value": "threat", "title": "Threat"},
    ],
    "allow_multiple": False,
    "severity_levels": ["low", "high"],
}
GUIDELINE = "Version text.\n\nMocking someone's name is harassment."


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


@pytest.fixture
def lead() -> User:
    user = UserFactory(username="lead")
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@pytest.fixture
def draft(policy: Policy, lead: User) -> PolicyDraft:
    return policy_draft_create(
        policy=policy, title="Name mockery", guideline=GUIDELINE, label_schema=NEW_SCHEMA, actor=Actor.of(lead)
    )


def in_review(draft: PolicyDraft, lead: User) -> PolicyDraft:
    return policy_draft_request_review(draft=draft, actor=Actor.of(lead))


@pytest.fixture
def golds(policy: Policy) -> list[GoldLabel]:
    """Ten items with gold under v1: 8 violating, 2 not violating."""
    version = policy.current_version()
    return [
        gold_record(
            item_id=ContentItemFactory().pk, policy_version=version, labels=[label], source="adjudication", actor=SYSTEM
        )
        for label in [V] * 8 + [N] * 2
    ]


@pytest.fixture
def relabellers() -> list[User]:
    return [UserFactory(username=f"relabeller{i}") for i in range(2)]


@pytest.fixture
def relabel_queue(relabellers: list[User]):  # type: ignore[no-untyped-def]
    queue = QueueFactory(slug="relabel", name="Relabel", required_annotations=2, max_annotations=2)
    queue.members.add(*relabellers)
    return queue


# --- the diff -----------------------------------------------------------------------------------


def test_the_diff_names_every_schema_change_and_the_changed_guideline_lines(policy: Policy, draft: PolicyDraft) -> None:
    diff = policy_diff(a=policy.current_version(), b=draft)
    assert diff.added == [("threat", "Threat")] and diff.removed == []
    [change] = diff.changed
    assert (change.value, change.old_title, change.new_title) == (V, "Violating", "Harassing")
    assert change.retitled and change.redescribed and diff.redefined_values == [V]
    assert diff.severity_changed and diff.new_severity == ["low", "high"]
    assert not diff.multiple_changed and not diff.order_changed
    assert [(line.kind, line.text) for line in diff.guideline_lines if line.kind != "context"] == [
        ("added", ""),
        ("added", "Mocking someone's name is harassment."),
    ]
    assert policy_change_summary(diff) == (
        "New label Threat; renamed Violating → Harassing; severity scale now low, high; "
        "guideline text changed (+2/−0 lines)."
    )


def test_the_diff_sees_a_reorder_a_removal_and_multi_label(policy: Policy, lead: User) -> None:
    schema = {"labels": [{"value": N}, {"value": "spam"}], "allow_multiple": True, "severity_levels": []}
    other = policy_draft_create(
        policy=policy,
        title="t",
        guideline="Version text.",
        label_schema=schema,
        actor=Actor.of(lead),
        confirm_removed=[V],
    )
    diff = policy_diff(a=policy.current_version(), b=other)
    assert diff.removed == [(V, "Violating")] and diff.added == [("spam", "Spam")]
    assert diff.multiple_changed and diff.new_multiple and not diff.guideline_changed
    assert "label Violating removed" in policy_change_summary(diff)


def test_each_removed_label_must_be_confirmed_by_name(policy: Policy, lead: User) -> None:
    schema = {"labels": [{"value": "abusive"}, {"value": "fine"}]}
    fields = {"policy": policy, "title": "t", "guideline": "g", "label_schema": schema, "actor": Actor.of(lead)}
    with pytest.raises(ValidationError, match="Confirm each removed label"):
        policy_draft_create(**fields, confirm_removed=[V])  # not_violating disappears too
    assert not PolicyDraft.objects.exists()
    policy_draft_create(**fields, confirm_removed=[V, N])
    assert PolicyDraft.objects.count() == 1


# --- review and publish ------------------------------------------------------------------------


def test_only_a_draft_in_review_is_published_and_an_edit_sends_it_back(draft: PolicyDraft, lead: User) -> None:
    with pytest.raises(ValidationError, match="Send the draft for review"):
        policy_draft_publish(draft=draft, actor=Actor.of(lead))
    in_review(draft, lead)
    in_review(draft, lead)  # idempotent
    assert AuditEvent.objects.filter(action="policy_draft.review_requested").count() == 1
    draft.refresh_from_db()
    assert draft.status == DraftStatus.IN_REVIEW and draft.review_requested_by == lead
    policy_draft_update(draft=draft, title="x", guideline="g", label_schema=NEW_SCHEMA, actor=Actor.of(lead))
    draft.refresh_from_db()
    assert draft.status == DraftStatus.DRAFT


def test_a_second_publish_of_the_same_draft_is_refused_clearly(draft: PolicyDraft, lead: User) -> None:
    in_review(draft, lead)
    version = policy_draft_publish(draft=draft, actor=Actor.of(lead))
    assert version.number == 2 and version.change_summary.startswith("New label Threat")
    draft.refresh_from_db()
    assert draft.status == DraftStatus.PUBLISHED
    with pytest.raises(ValidationError, match="already published as v2; it cannot be published twice"):
        policy_draft_publish(draft=draft, actor=Actor.of(lead))
    assert draft.policy.versions.count() == 2 and PolicyPublication.objects.count() == 1
    assert AuditEvent.objects.filter(action="policy_version.published").count() == 1


def test_an_effective_time_in_the_past_is_refused_and_a_future_one_schedules(
    policy: Policy, draft: PolicyDraft, lead: User, relabel_queue
) -> None:
    in_review(draft, lead)
    with pytest.raises(ValidationError, match="in the past"):
        policy_draft_publish(draft=draft, actor=Actor.of(lead), effective_at=timezone.now() - timedelta(minutes=5))
    later = timezone.now() + timedelta(days=1)
    sample = RelabelChoice(mode="sample", queue=relabel_queue, sample_size=3)
    with pytest.raises(ValidationError, match="in force at once"):
        policy_draft_publish(draft=draft, actor=Actor.of(lead), effective_at=later, relabel=sample)
    version = policy_draft_publish(draft=draft, actor=Actor.of(lead), effective_at=later)
    assert version.effective_at == later and policy.current_version().number == 1
    # A draft of v1 made while v2 is scheduled would overwrite it: refused.
    other = in_review(
        policy_draft_create(policy=policy, title="o", guideline="g", label_schema=BINARY_SCHEMA, actor=Actor.of(lead)),
        lead,
    )
    with pytest.raises(ValidationError, match="v2 was published since"):
        policy_draft_publish(draft=other, actor=Actor.of(lead))


def test_a_time_a_few_seconds_ago_counts_as_now(policy: Policy, draft: PolicyDraft, lead: User) -> None:
    in_review(draft, lead)
    policy_draft_publish(draft=draft, actor=Actor.of(lead), effective_at=timezone.now() - timedelta(seconds=20))
    assert policy.current_version().number == 2


# --- re-review selection -----------------------------------------------------------------------


def test_allocation_is_proportional_with_at_least_one_per_label() -> None:
    assert stratified_allocation({"a": 90, "b": 9, "c": 1}, 10) == {"a": 8, "b": 1, "c": 1}
    assert stratified_allocation({"a": 50, "b": 50}, 10) == {"a": 5, "b": 5}
    assert stratified_allocation({"a": 3, "b": 1}, 10) == {"a": 3, "b": 1}  # fewer than asked: all
    with pytest.raises(ValidationError, match="choose at least 3"):
        stratified_allocation({"a": 5, "b": 5, "c": 5}, 2)


def test_a_sample_is_seeded(policy: Policy, golds: list[GoldLabel]) -> None:
    candidates = gold_relabel_candidates(policy=policy, from_version=policy.current_version())
    first = relabel_sample(candidates=candidates, n=5, seed=7)
    assert first == relabel_sample(candidates=candidates, n=5, seed=7)
    assert first.population == {N: 2, V: 8} and first.chosen == {N: 1, V: 4}


def test_publishing_with_a_stratified_sample_opens_and_records_its_tasks(
    policy: Policy, draft: PolicyDraft, lead: User, golds: list[GoldLabel], relabel_queue
) -> None:
    in_review(draft, lead)
    choice = RelabelChoice(mode="sample", queue=relabel_queue, sample_size=4, seed=3)
    version = policy_draft_publish(draft=draft, actor=Actor.of(lead), relabel=choice)
    tasks = ReviewTask.objects.filter(reason=TaskReason.RELABEL, queue=relabel_queue)
    assert tasks.count() == 4
    by_item = {gold.item_id: gold.labels[0] for gold in golds}
    assert sorted(by_item[task.item_id] for task in tasks) == [N, V, V, V]  # 3.2 and 0.8, at least one
    publication = version.publication
    assert (publication.relabel_mode, publication.relabel_sample_size, publication.relabel_tasks) == ("sample", 4, 4)
    assert publication.previous_version.number == 1 and publication.relabel_queue == relabel_queue
    event = AuditEvent.objects.get(action="policy_version.published")
    recorded = event.after["relabel_selection"]
    assert recorded["seed"] == 3 and recorded["chosen"] == {N: 1, V: 3} and recorded["population"] == {N: 2, V: 8}
    assert sorted(recorded["gold_ids"]) == sorted(g.pk for g in golds if g.item_id in {t.item_id for t in tasks})


def test_affected_mode_takes_the_gold_of_removed_or_redefined_labels(
    policy: Policy, draft: PolicyDraft, lead: User, golds: list[GoldLabel], relabel_queue
) -> None:
    in_review(draft, lead)  # redefines "violating" only
    choice = RelabelChoice(mode="affected", queue=relabel_queue)
    version = policy_draft_publish(draft=draft, actor=Actor.of(lead), relabel=choice)
    items = set(ReviewTask.objects.filter(reason=TaskReason.RELABEL).values_list("item_id", flat=True))
    assert items == {gold.item_id for gold in golds if gold.labels == [V]}
    assert version.publication.relabel_tasks == 8


def test_affected_mode_refuses_a_draft_that_affects_no_label(
    policy: Policy, lead: User, golds: list[GoldLabel], relabel_queue
) -> None:
    draft = policy_draft_create(
        policy=policy, title="words", guideline="New words.", label_schema=BINARY_SCHEMA, actor=Actor.of(lead)
    )
    in_review(draft, lead)
    with pytest.raises(ValidationError, match="no gold label is affected"):
        policy_draft_publish(
            draft=draft, actor=Actor.of(lead), relabel=RelabelChoice(mode="affected", queue=relabel_queue)
        )
    assert policy.versions.count() == 1  # nothing half-done


def answer_relabels(queue, reviewers, answer: str) -> None:  # type: ignore[no-untyped-def]
    for reviewer in reviewers:
        while (claim := task_claim_next(reviewer=reviewer, queue=queue)) is not None:
            annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[answer])


def test_the_policy_page_compares_labels_before_and_after_with_intervals(
    policy: Policy, draft: PolicyDraft, lead: User, golds: list[GoldLabel], relabel_queue, relabellers
) -> None:
    in_review(draft, lead)
    choice = RelabelChoice(mode="sample", queue=relabel_queue, sample_size=4, seed=3)
    policy_draft_publish(draft=draft, actor=Actor.of(lead), relabel=choice)
    client = Client()
    client.force_login(lead)
    page = client.get(reverse("policy-detail", args=[policy.key])).content.decode()
    assert "None of the 4 re-review tasks has been decided yet." in page
    answer_relabels(relabel_queue, relabellers, N)
    page = client.get(reverse("policy-detail", args=[policy.key])).content.decode()
    assert "4 items re-decided under v2 of 4 sent; 3 changed label." in page
    # Not violating: 1 of 4 before, 4 of 4 after, with Wilson intervals.
    assert '0.250 <span class="muted">[0.046, 0.699] n=1</span>' in page
    assert '1.000 <span class="muted">[0.510, 1.000] n=4</span>' in page


# --- the notice to reviewers -------------------------------------------------------------------


def test_the_notice_is_taken_once_per_reviewer_and_version(policy: Policy, draft: PolicyDraft, lead: User) -> None:
    reviewer = UserFactory()
    assert policy_notice_take(version=policy.current_version(), reviewer=reviewer) is None  # v1 has no summary
    in_review(draft, lead)
    version = policy_draft_publish(draft=draft, actor=Actor.of(lead))
    notice = policy_notice_take(version=version, reviewer=reviewer)
    assert notice is not None and notice.summary == version.change_summary
    assert policy_notice_take(version=version, reviewer=reviewer) is None
    assert policy_notice_take(version=version, reviewer=UserFactory()) is not None
    assert PolicyNoticeSeen.objects.count() == 2


# --- pages -------------------------------------------------------------------------------------


def test_the_diff_page_compares_any_two_versions_and_explains_bad_input(
    policy: Policy, draft: PolicyDraft, lead: User
) -> None:
    in_review(draft, lead)
    policy_draft_publish(draft=draft, actor=Actor.of(lead))
    client = Client()
    client.force_login(lead)
    url = reverse("policy-diff", args=[policy.key])
    page = client.get(url, {"a": 1, "b": 2}).content.decode()
    assert "Changes from v1 to v2" in page and "Violating → Harassing" in page and "Threat" in page
    assert client.get(url).status_code == 200  # defaults to the newest against the one before
    response = client.get(url, {"a": 2, "b": 2})
    assert response.status_code == 400 and "Choose two different versions." in response.content.decode()
    response = client.get(url, {"a": 1, "b": 9})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()


def test_the_publish_page_asks_for_the_relabel_choice_and_shows_errors(
    policy: Policy, draft: PolicyDraft, lead: User, golds: list[GoldLabel], relabel_queue
) -> None:
    in_review(draft, lead)
    client = Client()
    client.force_login(lead)
    url = reverse("llm:draft-publish", args=[draft.pk])
    page = client.get(url).content.decode()
    assert "10 items of" in page and "Re-review a stratified sample" in page and "Changes from v1 to this draft" in page
    response = client.post(url, {"relabel_mode": "sample", "relabel_sample_size": "3"})
    assert response.status_code == 400 and "Choose the queue the re-review tasks open in." in response.content.decode()
    response = client.post(
        url, {"relabel_mode": "sample", "relabel_sample_size": "3", "relabel_queue": relabel_queue.pk}
    )
    assert response.status_code == 302 and response["Location"] == reverse("policy-detail", args=[policy.key])
    assert ReviewTask.objects.filter(reason=TaskReason.RELABEL).count() == 3


def test_the_form_asks_to_confirm_each_removed_label(policy: Policy, lead: User) -> None:
    client = Client()
    client.force_login(lead)
    url = reverse("llm:draft-new", args=[policy.key])
    fields = {"title": "t", "guideline": "g", "label_schema": '{"labels": [{"value": "abusive"}, {"value": "x"}]}'}
    page = client.post(url, fields).content.decode()
    assert "Remove Violating (violating)" in page and "Remove Not violating (not_violating)" in page
    assert client.post(url, {**fields, "confirm_removed": [V]}).status_code == 200
    assert client.post(url, {**fields, "confirm_removed": [V, N]}).status_code == 302


def test_reviewers_get_403_on_the_policy_pages(policy: Policy, draft: PolicyDraft) -> None:
    client = Client()
    client.force_login(UserFactory())
    for url in (
        reverse("policy-list"),
        reverse("policy-detail", args=[policy.key]),
        reverse("policy-diff", args=[policy.key]),
        reverse("llm:draft-publish", args=[draft.pk]),
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("llm:draft-request-review", args=[draft.pk])).status_code == 403


# --- REST --------------------------------------------------------------------------------------


def api_for(user: User, scopes: list[str]) -> APIClient:
    _, secret = token_create(name=f"t-{user.username}-{len(scopes)}", scopes=scopes, user=user, actor=SYSTEM)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_lead_token_with_policies_write_runs_the_whole_lifecycle(
    policy: Policy, lead: User, golds: list[GoldLabel], relabel_queue
) -> None:
    api = api_for(lead, ["policies:write"])
    body = {"title": "API draft", "guideline": GUIDELINE, "label_schema": NEW_SCHEMA}
    created = api.post(f"/api/v1/policies/{policy.key}/drafts", body, format="json")
    assert created.status_code == 201, created.json()
    draft_id = created.json()["id"]
    assert created.json()["status"] == "draft" and created.json()["base_version"] == 1
    updated = api.put(f"/api/v1/policy-drafts/{draft_id}", {**body, "title": "Renamed"}, format="json")
    assert updated.status_code == 200 and updated.json()["title"] == "Renamed"
    refused = api.post(f"/api/v1/policy-drafts/{draft_id}/publish", {}, format="json")
    assert refused.status_code == 400 and "Send the draft for review" in refused.json()["detail"]
    review = api.post(f"/api/v1/policy-drafts/{draft_id}/request-review")
    assert review.status_code == 200 and review.json()["status"] == "in_review"
    publish = {"relabel_mode": "sample", "relabel_sample_size": 2, "relabel_queue": "relabel", "seed": 1}
    published = api.post(f"/api/v1/policy-drafts/{draft_id}/publish", publish, format="json")
    assert published.status_code == 201, published.json()
    assert published.json()["number"] == 2 and published.json()["relabel_tasks"] == 2
    again = api.post(f"/api/v1/policy-drafts/{draft_id}/publish", publish, format="json")
    assert again.status_code == 400 and "cannot be published twice" in again.json()["detail"]
    versions = api.get(f"/api/v1/policies/{policy.key}/versions").json()
    assert [v["number"] for v in versions] == [2, 1] and versions[0]["change_summary"].startswith("New label Threat")
    diff = api.get(f"/api/v1/policies/{policy.key}/diff", {"a": 1, "b": 2}).json()
    assert diff["labels_added"] == [{"value": "threat", "title": "Threat"}]
    assert diff["labels_changed"][0]["new_title"] == "Harassing" and diff["guideline_added"] == 2
    assert api.get(f"/api/v1/policies/{policy.key}/diff", {"a": 1}).status_code == 400
    assert AuditEvent.objects.filter(action="policy_version.published", actor_label="token:t-lead-1").exists()


def test_the_api_refuses_a_token_without_the_scope_and_any_reviewer(
    policy: Policy, lead: User, draft: PolicyDraft
) -> None:
    body = {"title": "t", "guideline": "g", "label_schema": BINARY_SCHEMA}
    url = f"/api/v1/policies/{policy.key}/drafts"
    assert api_for(lead, ["tasks:write"]).post(url, body, format="json").status_code == 403
    reviewer = UserFactory(username="rev")
    assert api_for(reviewer, ["policies:write"]).post(url, body, format="json").status_code == 403
    session = APIClient()
    session.force_login(reviewer)
    assert session.post(url, body, format="json").status_code == 403
    assert session.post(f"/api/v1/policy-drafts/{draft.pk}/publish", {}, format="json").status_code == 403
    assert PolicyDraft.objects.count() == 1


# --- the label editor --------------------------------------------------------------------------


def editor_post(client: Client, url: str, **changes: str) -> tuple[dict[str, str], object]:
    """The draft form as the browser posts it, with `changes` applied to its fields."""
    page = client.get(url).content.decode()
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
    fields.update(
        {
            name: html.unescape(value)
            for name, value in re.findall(r'<textarea name="([^"]+)"[^>]*>\n?(.*?)</textarea>', page, re.S)
        }
    )
    fields["label_schema_initial"] = html.unescape(fields["label_schema_initial"])
    fields.pop("csrfmiddlewaretoken", None)
    fields.update(changes)
    return fields, client.post(url, fields)


def test_the_label_rows_edit_titles_add_labels_reorder_and_set_severity(policy: Policy, lead: User) -> None:
    client = Client()
    client.force_login(lead)
    url = reverse("llm:draft-new", args=[policy.key])
    _, response = editor_post(
        client,
        url,
        title="Rows",
        **{
            "labels-0-title": "Harassing",
            "labels-0-description": "Attacks a person.",
            "labels-0-ORDER": "2",
            "labels-1-ORDER": "1",
            "labels-2-value": "threat",
            "labels-2-title": "Threat",
            "labels-2-ORDER": "3",
            "severity_levels": "low, high",
            "allow_multiple": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    schema = PolicyDraft.objects.get().label_schema
    assert schema["labels"] == [
        {"value": N, "title": "Not violating"},
        {"value": V, "title": "Harassing", "description": "Attacks a person."},
        {"value": "threat", "title": "Threat"},
    ]
    assert schema["severity_levels"] == ["low", "high"] and schema["allow_multiple"] is True


def test_changing_a_value_in_the_rows_needs_the_removal_confirmed(policy: Policy, lead: User) -> None:
    client = Client()
    client.force_login(lead)
    url = reverse("llm:draft-new", args=[policy.key])
    fields, response = editor_post(client, url, title="Rename", **{"labels-0-value": "abusive"})
    page = response.content.decode()
    assert response.status_code == 200 and "Remove Violating (violating)" in page and "nothing is renamed" in page
    response = client.post(url, {**fields, "confirm_removed": [V]})
    assert response.status_code == 302
    assert PolicyDraft.objects.get().label_values == ["abusive", N]


def test_editing_both_the_rows_and_the_json_is_refused(policy: Policy, lead: User) -> None:
    client = Client()
    client.force_login(lead)
    url = reverse("llm:draft-new", args=[policy.key])
    _, response = editor_post(
        client, url, title="Both", label_schema=json.dumps(NEW_SCHEMA), **{"labels-0-title": "Other"}
    )
    assert "both in the rows and in the JSON" in response.content.decode()
    assert not PolicyDraft.objects.exists()
    _, response = editor_post(client, url, title="JSON", label_schema=json.dumps(NEW_SCHEMA))
    assert response.status_code == 302 and PolicyDraft.objects.get().label_schema == NEW_SCHEMA
