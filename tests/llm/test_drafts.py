"""Policy drafts: writing, rename detection, publishing, the evaluation a draft run measures, pages."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from labeling.llm.models import LLMJudgement, LLMReviewer, LLMRun, RunKind, RunStatus
from labeling.llm.services.draft_evaluation import draft_evaluation, draft_evaluation_start
from labeling.llm.services.drafts import (
    policy_draft_create,
    policy_draft_publish,
    policy_draft_request_review,
    policy_draft_update,
)
from labeling.models import GoldLabel, Policy, PolicyDraft
from reviewapp.audit import Actor
from reviewapp.models import AuditEvent, ContentItem
from tests.factories import BINARY_SCHEMA, ContentItemFactory, PolicyFactory, ReviewTaskFactory, UserFactory

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
RENAMED_SCHEMA = {
    "labels": [{"value": "abusive", "title": "Abusive"}, {"value": "not_violating", "title": "Not violating"}],
}


def member_of(group: str, username: str) -> User:
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def lead() -> User:
    return member_of("policy_lead", "lead")


@pytest.fixture
def harassment() -> Policy:
    return PolicyFactory(key="harassment", name="Harassment")


@pytest.fixture
def draft(harassment: Policy, lead: User) -> PolicyDraft:
    return policy_draft_create(
        policy=harassment,
        title="Count mockery of a name",
        guideline="Mocking someone's **name** is harassment.",
        label_schema=BINARY_SCHEMA,
        actor=Actor.of(lead),
    )


@pytest.fixture
def reviewer(harassment: Policy) -> LLMReviewer:
    return LLMReviewer.objects.create(
        name="gemma",
        policy=harassment,
        policy_version=harassment.current_version(),
        model_name="gemma-3-270m",
        account=UserFactory(username="llm-gemma"),
    )


# (current answer, draft answer, gold) per item; "" is an abstention.
ANSWERS = [
    ("violating", "violating", "violating"),
    ("violating", "not_violating", "violating"),  # flips; its text is hostile
    ("not_violating", "violating", "not_violating"),  # flips
    ("not_violating", "not_violating", "not_violating"),
    ("not_violating", "violating", "violating"),  # flips
    ("", "violating", "violating"),  # abstained under the current version: left out
]


def draft_run(draft: PolicyDraft, reviewer: LLMReviewer, answers=ANSWERS, status=RunStatus.DONE) -> LLMRun:  # type: ignore[no-untyped-def]
    items = [ContentItemFactory(text=HOSTILE if i == 1 else f"comment {i}") for i in range(len(answers))]
    run = LLMRun.objects.create(
        reviewer=reviewer,
        kind=RunKind.DRAFT,
        draft=draft,
        item_ids=[item.pk for item in items],
        variants=["current", "draft"],
        status=status,
    )
    for item, (current, new, gold) in zip(items, answers, strict=True):
        LLMJudgement.objects.create(run=run, item=item, variant="current", label=current)
        LLMJudgement.objects.create(run=run, item=item, variant="draft", label=new)
        GoldLabel.objects.create(
            item=item, policy=draft.policy, policy_version=draft.base_version, labels=[gold], source="adjudication"
        )
    return run


def test_a_draft_starts_from_the_version_in_force_and_is_audited(draft: PolicyDraft) -> None:
    assert draft.base_version == draft.policy.current_version()
    event = AuditEvent.objects.get(action="policy_draft.created", object_id=str(draft.pk))
    assert event.actor_label == "lead" and event.after["labels"] == ["violating", "not_violating"]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"labels": [{"value": "only"}]}, "at least two labels"),
        ({"labels": [{"value": "a b"}, {"value": "c"}]}, "must be a slug"),
        ("not an object", "must be an object"),
    ],
)
def test_a_bad_schema_is_refused_naming_the_problem(harassment: Policy, lead: User, schema, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as error:
        policy_draft_create(policy=harassment, title="t", guideline="g", label_schema=schema, actor=Actor.of(lead))
    assert message in str(error.value.message_dict["label_schema"])


def test_a_label_replaced_by_another_is_flagged_as_a_possible_rename(harassment: Policy, lead: User) -> None:
    fields = {"policy": harassment, "title": "Rename", "guideline": "g", "label_schema": RENAMED_SCHEMA}
    with pytest.raises(ValidationError) as error:
        policy_draft_create(**fields, actor=Actor.of(lead))
    message = " ".join(error.value.message_dict["label_schema"])
    assert "'violating' disappears while 'abusive' appears" in message and "nothing is renamed" in message
    assert not PolicyDraft.objects.exists()

    draft = policy_draft_create(**fields, actor=Actor.of(lead), confirm_removed=["violating"])
    event = AuditEvent.objects.get(action="policy_draft.created", object_id=str(draft.pk))
    assert event.after["removed_labels"] == ["violating"] and event.after["added_labels"] == ["abusive"]


def test_an_update_of_an_unpublished_draft_is_audited_with_before_and_after(draft: PolicyDraft, lead: User) -> None:
    policy_draft_update(
        draft=draft, title="New title", guideline="Other text", label_schema=BINARY_SCHEMA, actor=Actor.of(lead)
    )
    draft.refresh_from_db()
    assert draft.title == "New title"
    event = AuditEvent.objects.get(action="policy_draft.updated")
    assert event.before["title"] == "Count mockery of a name" and event.after["title"] == "New title"


def test_publishing_creates_the_next_version_and_makes_the_draft_read_only(draft: PolicyDraft, lead: User) -> None:
    policy_draft_request_review(draft=draft, actor=Actor.of(lead))
    version = policy_draft_publish(draft=draft, actor=Actor.of(lead))
    assert version.number == 2 and version.guideline == draft.guideline and version.created_by == lead
    assert draft.policy.current_version() == version
    assert draft.policy.versions.count() == 2  # v1 is untouched: versions are append-only
    draft.refresh_from_db()
    assert draft.published_version == version
    event = AuditEvent.objects.get(action="policy_version.published")
    assert event.before["version"] == 1 and event.after == {**event.after, "version": 2, "draft": draft.pk}
    with pytest.raises(ValidationError, match="read-only"):
        policy_draft_update(draft=draft, title="x", guideline="y", label_schema=BINARY_SCHEMA, actor=Actor.of(lead))
    with pytest.raises(ValidationError, match="already published as v2; it cannot be published twice"):
        policy_draft_publish(draft=draft, actor=Actor.of(lead))


def test_a_draft_of_a_superseded_version_cannot_be_published(draft: PolicyDraft, lead: User) -> None:
    other = policy_draft_create(
        policy=draft.policy, title="Other", guideline="g", label_schema=BINARY_SCHEMA, actor=Actor.of(lead)
    )
    for each in (draft, other):
        policy_draft_request_review(draft=each, actor=Actor.of(lead))
    policy_draft_publish(draft=draft, actor=Actor.of(lead))
    with pytest.raises(ValidationError, match="based on v1 but v2 was published since"):
        policy_draft_publish(draft=other, actor=Actor.of(lead))
    assert draft.policy.versions.count() == 2


def test_the_evaluation_equals_a_hand_count_of_the_judgements(draft: PolicyDraft, reviewer: LLMReviewer) -> None:
    run = draft_run(draft, reviewer)
    evaluation = draft_evaluation(run=run)
    assert (evaluation.planned, evaluation.answered, evaluation.n) == (6, 6, 5)
    assert (evaluation.abstained_current, evaluation.abstained_draft) == (1, 0)
    assert evaluation.rows == evaluation.columns == ["violating", "not_violating"]
    assert evaluation.matrix() == [("violating", "Violating", [1, 1]), ("not_violating", "Not violating", [2, 1])]
    item_ids = run.item_ids
    assert [(f.item_id, f.current, f.draft, f.gold) for f in evaluation.flips] == [
        (item_ids[1], "violating", "not_violating", "violating"),
        (item_ids[2], "not_violating", "violating", "not_violating"),
        (item_ids[4], "not_violating", "violating", "violating"),
    ]
    shifts = {s.label: s for s in evaluation.shifts}
    assert (shifts["violating"].current.count, shifts["violating"].draft.count) == (2, 3)
    assert shifts["violating"].difference == pytest.approx(3 / 5 - 2 / 5)
    assert shifts["not_violating"].difference == pytest.approx(2 / 5 - 3 / 5)
    low, high = shifts["violating"].current.interval
    assert low < 2 / 5 < high
    # Gold: current right on items 0-3, wrong on 4; draft right on 0, 3, 4.
    assert (evaluation.gold_n, evaluation.gold_correct_current, evaluation.gold_correct_draft) == (5, 4, 3)


def test_a_draft_that_changes_the_label_set_is_not_graded_against_gold(
    harassment: Policy, lead: User, reviewer: LLMReviewer
) -> None:
    renamed = policy_draft_create(
        policy=harassment,
        title="Rename",
        guideline="g",
        label_schema=RENAMED_SCHEMA,
        actor=Actor.of(lead),
        confirm_removed=["violating"],
    )
    answers = [("violating", "abusive", "violating"), ("not_violating", "not_violating", "not_violating")]
    evaluation = draft_evaluation(run=draft_run(renamed, reviewer, answers))
    assert evaluation.rows == ["violating", "not_violating"] and evaluation.columns == ["abusive", "not_violating"]
    assert evaluation.matrix() == [("violating", "Violating", [1, 0]), ("not_violating", "Not violating", [0, 1])]
    assert evaluation.column_heads == [("abusive", "Abusive"), ("not_violating", "Not violating")]
    assert not evaluation.keeps_label_set and evaluation.gold_n == 0
    assert [s.label for s in evaluation.shifts] == ["violating", "not_violating", "abusive"]


def test_a_run_of_another_kind_is_not_read_as_a_draft_evaluation(reviewer: LLMReviewer) -> None:
    run = LLMRun.objects.create(reviewer=reviewer, kind=RunKind.GOLD_SAMPLE, variants=[""])
    with pytest.raises(ValidationError, match="not a policy-draft evaluation"):
        draft_evaluation(run=run)


def test_an_evaluation_refuses_a_reviewer_of_another_policy(draft: PolicyDraft, lead: User) -> None:
    other = PolicyFactory(key="spam")
    stranger = LLMReviewer.objects.create(
        name="other", policy=other, policy_version=other.current_version(), model_name="m", account=UserFactory()
    )
    with pytest.raises(ValidationError, match="reviews another policy"):
        draft_evaluation_start(draft=draft, reviewer=stranger, n=10, actor=Actor.of(lead))


# --- Pages ---------------------------------------------------------------------------------------


def test_reviewers_get_403_on_every_draft_page(draft: PolicyDraft) -> None:
    client = logged_in(UserFactory(username="reviewer"))
    pk = draft.pk
    assert client.get(reverse("llm:draft-list")).status_code == 403
    assert client.get(reverse("llm:draft-new", args=["harassment"])).status_code == 403
    assert client.get(reverse("llm:draft-detail", args=[pk])).status_code == 403
    assert client.get(reverse("llm:draft-edit", args=[pk])).status_code == 403
    assert client.post(reverse("llm:draft-evaluate", args=[pk])).status_code == 403
    assert client.post(reverse("llm:draft-publish", args=[pk])).status_code == 403
    assert client.post(reverse("llm:draft-preview"), {"guideline": "x"}).status_code == 403
    assert PolicyDraft.objects.get(pk=pk).published_version is None


def test_the_list_shows_drafts_per_policy(draft: PolicyDraft, lead: User) -> None:
    page = logged_in(lead).get(reverse("llm:draft-list")).content.decode()
    assert "Count mockery of a name" in page and "New draft of Harassment" in page


def test_the_new_draft_form_is_prefilled_from_the_version_in_force(harassment: Policy, lead: User) -> None:
    page = logged_in(lead).get(reverse("llm:draft-new", args=["harassment"])).content.decode()
    assert "Version text." in page and "&quot;not_violating&quot;" in page


def test_the_form_shows_schema_errors_and_saves_a_valid_draft(harassment: Policy, lead: User) -> None:
    client = logged_in(lead)
    url = reverse("llm:draft-new", args=["harassment"])
    fields = {"title": "Stricter", "guideline": "Text"}
    page = client.post(url, {**fields, "label_schema": "{not json"}).content.decode()
    assert "Label schema is not valid JSON" in page
    page = client.post(url, {**fields, "label_schema": '{"labels": [{"value": "a"}]}'}).content.decode()
    assert "at least two labels" in page
    renamed = '{"labels": [{"value": "abusive"}, {"value": "not_violating"}]}'
    page = client.post(url, {**fields, "label_schema": renamed})
    assert "&#x27;violating&#x27; disappears while &#x27;abusive&#x27; appears" in page.content.decode()
    assert not PolicyDraft.objects.exists()
    added = '{"labels": [{"value": "violating"}, {"value": "not_violating"}, {"value": "borderline"}]}'
    response = client.post(url, {**fields, "label_schema": added})
    draft = PolicyDraft.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("llm:draft-detail", args=[draft.pk])


def test_the_detail_page_shows_the_evaluation_and_escapes_item_text(
    draft: PolicyDraft, reviewer: LLMReviewer, lead: User
) -> None:
    run = draft_run(draft, reviewer)
    page = logged_in(lead).get(reverse("llm:draft-detail", args=[draft.pk])).content.decode()
    measured = "Measured on <strong>5</strong> gold items of Harassment labelled by LLM reviewer <strong>gemma</strong>"
    assert measured in page
    assert HOSTILE not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert f'href="/items/{run.item_ids[1]}/"' in page
    assert "<strong>3</strong> of 5 items flip" in page
    assert (
        '<th scope="row" title="not_violating">Not violating</th><td class="num">2</td><td class="num">1</td>' in page
    )
    assert "Send for review</button>" in page and "Changes from v1 to this draft" in page
    assert 'hx-trigger="every' not in page  # the run is done: nothing polls


def test_a_running_evaluation_polls_its_partial(draft: PolicyDraft, reviewer: LLMReviewer, lead: User) -> None:
    draft_run(draft, reviewer, status=RunStatus.RUNNING)
    client = logged_in(lead)
    url = reverse("llm:draft-detail", args=[draft.pk])
    assert 'hx-trigger="every 2s"' in client.get(url).content.decode()
    partial = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="evaluation"') and "<html" not in partial


def test_publishing_from_the_page(draft: PolicyDraft, lead: User) -> None:
    client = logged_in(lead)
    client.post(reverse("llm:draft-request-review", args=[draft.pk]))
    response = client.post(reverse("llm:draft-publish", args=[draft.pk]), {"relabel_mode": "none"}, follow=True)
    assert "Published as harassment v2; 0 re-review tasks opened." in response.content.decode()
    assert "published as v2" in response.content.decode()
    edit = client.get(reverse("llm:draft-edit", args=[draft.pk]), follow=True).content.decode()
    assert "read-only" in edit


def test_evaluating_without_a_reviewer_says_so(draft: PolicyDraft, lead: User) -> None:
    response = logged_in(lead).post(reverse("llm:draft-evaluate", args=[draft.pk]), {"n": "10"}, follow=True)
    assert "Choose an LLM reviewer of Harassment." in response.content.decode()
    assert not LLMRun.objects.exists()


def test_the_guideline_preview_renders_markdown_without_raw_html(lead: User) -> None:
    page = logged_in(lead).post(reverse("llm:draft-preview"), {"guideline": "**bold** <b>raw</b>"}).content.decode()
    assert "<strong>bold</strong>" in page and "<b>raw</b>" not in page


def test_evaluating_starts_a_draft_run_on_gold(draft: PolicyDraft, reviewer: LLMReviewer, lead: User) -> None:
    item = ReviewTaskFactory(policy=draft.policy, item=ContentItem.objects.create(source="s", external_id="g")).item
    GoldLabel.objects.create(
        item=item, policy=draft.policy, policy_version=draft.base_version, labels=["violating"], source="adjudication"
    )
    logged_in(lead).post(reverse("llm:draft-evaluate", args=[draft.pk]), {"reviewer": reviewer.pk, "n": "5"})
    run = LLMRun.objects.get()
    assert (run.kind, run.draft, run.variants) == (RunKind.DRAFT, draft, ["current", "draft"])
    assert run.item_ids == [item.pk] and run.started_by == lead
    response = logged_in(lead).post(
        reverse("llm:draft-evaluate", args=[draft.pk]), {"reviewer": reviewer.pk}, follow=True
    )
    assert "still running" in response.content.decode() and LLMRun.objects.count() == 1


def test_the_publish_page_shows_the_predicted_impact_and_refuses_a_past_time(
    draft: PolicyDraft, reviewer: LLMReviewer, lead: User
) -> None:
    draft_run(draft, reviewer)
    policy_draft_request_review(draft=draft, actor=Actor.of(lead))
    client = logged_in(lead)
    url = reverse("llm:draft-publish", args=[draft.pk])
    page = client.get(url).content.decode()
    assert "What the draft would change" in page and "<strong>3</strong> of 5 items flip" in page
    response = client.post(url, {"relabel_mode": "none", "effective_at": "2020-01-01T10:00"})
    assert response.status_code == 400 and "The effective time is in the past" in response.content.decode()
    assert draft.policy.versions.count() == 1
