"""Re-review after a policy change: queueing gold under an old version, new gold versions, distributions."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.models import GoldLabel, GoldSource, PolicyVersion
from labeling.services.annotations import annotation_submit
from labeling.services.relabel import gold_current_labels, gold_queue_relabel, relabel_distribution
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ReviewTask, TaskReason
from reviewapp.services.claims import task_claim_next
from tests.factories import ContentItemFactory, PolicyVersionFactory, QueueFactory, ReviewTaskFactory, UserFactory

V, N = "violating", "not_violating"
# Gold under v1, and what reviewers say under v2: the new version moved two items.
BEFORE = [V, V, V, V, N, N]
AFTER = [N, N, V, V, N, N]


@pytest.fixture(autouse=True)
def no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0  # consensus runs inline on the last annotation


@pytest.fixture
def reviewers(db):  # type: ignore[no-untyped-def]
    return [UserFactory(username=f"relabeller{i}") for i in range(2)]


@pytest.fixture
def relabel_queue(reviewers):  # type: ignore[no-untyped-def]
    queue = QueueFactory(slug="relabel", required_annotations=2, max_annotations=2)
    queue.members.add(*reviewers)
    return queue


def label_everything(queue, reviewers, answer_for) -> int:  # type: ignore[no-untyped-def]
    """Each reviewer claims and labels every task the queue serves them; returns the answers given."""
    given = 0
    for reviewer in reviewers:
        while (claim := task_claim_next(reviewer=reviewer, queue=queue)) is not None:
            annotation_submit(
                task_id=claim.task.pk,
                reviewer=reviewer,
                submission_id=uuid.uuid4(),
                labels=[answer_for(claim.task.item_id)],
            )
            given += 1
    return given


@pytest.fixture
def original_reviewer(queue):  # type: ignore[no-untyped-def]
    reviewer = UserFactory(username="original")
    queue.members.add(reviewer)
    return reviewer


@pytest.fixture
def gold_v1(policy, queue, original_reviewer):  # type: ignore[no-untyped-def]
    """Six items with consensus gold under version 1, decided in the live queue by one reviewer."""
    items = [ContentItemFactory() for _ in BEFORE]
    for item in items:
        ReviewTaskFactory(item=item, policy=policy, queue=queue, sampling_propensity=0.25)
    wanted = {item.pk: label for item, label in zip(items, BEFORE, strict=True)}
    assert label_everything(queue, [original_reviewer], wanted.__getitem__) == len(items)
    assert GoldLabel.objects.filter(policy_version__number=1).count() == len(items)
    return items


@pytest.fixture
def version_2(policy):  # type: ignore[no-untyped-def]
    return PolicyVersionFactory(policy=policy, number=2, guideline="Mild mockery between friends is allowed.")


def test_relabel_queues_gold_under_the_old_version_once(policy, gold_v1, version_2, relabel_queue) -> None:
    v1 = policy.versions.get(number=1)
    queued = gold_queue_relabel(policy=policy, from_version=v1, queue=relabel_queue, actor=SYSTEM)
    assert (queued.eligible, queued.already_queued, len(queued.task_ids)) == (6, 0, 6)
    tasks = ReviewTask.objects.filter(pk__in=queued.task_ids)
    assert {t.reason for t in tasks} == {TaskReason.RELABEL}
    assert {t.item_id for t in tasks} == {item.pk for item in gold_v1}
    assert {t.sampling_propensity for t in tasks} == {0.25}  # provenance of the gold it re-decides
    assert AuditEvent.objects.filter(action="relabel.queued").count() == 1

    again = gold_queue_relabel(policy=policy, from_version=v1, queue=relabel_queue, actor=SYSTEM)
    assert (again.eligible, again.already_queued, again.task_ids) == (6, 6, [])
    assert ReviewTask.objects.filter(reason=TaskReason.RELABEL).count() == 6
    assert AuditEvent.objects.filter(action="relabel.queued").count() == 1


def test_relabel_limit_takes_the_oldest_first(policy, gold_v1, version_2, relabel_queue) -> None:
    v1 = policy.versions.get(number=1)
    first = gold_queue_relabel(policy=policy, from_version=v1, queue=relabel_queue, actor=SYSTEM, limit=4)
    second = gold_queue_relabel(policy=policy, from_version=v1, queue=relabel_queue, actor=SYSTEM, limit=4)
    assert (len(first.task_ids), len(second.task_ids)) == (4, 2)
    oldest = GoldLabel.objects.filter(policy=policy).order_by("created_at", "pk")[:4]
    assert {t.item_id for t in ReviewTask.objects.filter(pk__in=first.task_ids)} == {g.item_id for g in oldest}


def test_resolved_relabel_tasks_make_new_gold_versions_under_the_new_version(
    policy, gold_v1, version_2, relabel_queue, reviewers
) -> None:
    v1 = policy.versions.get(number=1)
    gold_queue_relabel(policy=policy, from_version=v1, queue=relabel_queue, actor=SYSTEM)
    wanted = {item.pk: label for item, label in zip(gold_v1, AFTER, strict=True)}
    assert label_everything(relabel_queue, reviewers, wanted.__getitem__) == 12

    for item, before, after in zip(gold_v1, BEFORE, AFTER, strict=True):
        current = gold_current_labels(policy=policy).get(item=item)
        assert (current.version, current.labels, current.policy_version) == (2, [after], version_2)
        assert current.supersedes.labels == [before] and current.supersedes.policy_version == v1
        assert (current.source, current.task.reason, current.n_annotations, current.agreement) == (
            GoldSource.CONSENSUS,
            TaskReason.RELABEL,
            2,
            1.0,
        )
        assert current.route == current.supersedes.route  # re-review keeps how the item first came in
        assert current.sampling_propensity == 0.25

    distribution = relabel_distribution(policy=policy, from_version=v1, to_version=version_2)
    assert distribution.items == 6 and distribution.changed == 2
    assert distribution.before == {V: 4, N: 2} and distribution.after == {V: 2, N: 4}
    assert distribution.share("before") == pytest.approx({V: 4 / 6, N: 2 / 6})
    assert distribution.share("after") == pytest.approx({V: 2 / 6, N: 4 / 6})
    assert distribution.confusion == {(V, N): 2, (V, V): 2, (N, N): 2}

    nothing_left = gold_queue_relabel(policy=policy, from_version=v1, queue=relabel_queue, actor=SYSTEM)
    assert (nothing_left.eligible, nothing_left.task_ids) == (0, [])


def test_the_reviewer_of_the_old_gold_is_not_served_its_relabel(
    policy, gold_v1, version_2, relabel_queue, original_reviewer
) -> None:
    # One live annotation per reviewer, item and policy: a re-review needs other reviewers.
    relabel_queue.members.add(original_reviewer)
    gold_queue_relabel(policy=policy, from_version=policy.versions.get(number=1), queue=relabel_queue, actor=SYSTEM)
    assert task_claim_next(reviewer=original_reviewer, queue=relabel_queue) is None


def test_distribution_leaves_out_items_not_yet_relabelled(policy, gold_v1, version_2, relabel_queue, reviewers) -> None:
    v1 = policy.versions.get(number=1)
    gold_queue_relabel(policy=policy, from_version=v1, queue=relabel_queue, actor=SYSTEM, limit=2)
    wanted = {item.pk: label for item, label in zip(gold_v1, AFTER, strict=True)}
    label_everything(relabel_queue, reviewers, wanted.__getitem__)
    distribution = relabel_distribution(policy=policy, from_version=v1, to_version=version_2)
    assert distribution.items == 2


def test_relabel_needs_a_newer_version_in_force(policy, gold_v1, relabel_queue) -> None:
    with pytest.raises(ValidationError, match="version in force"):
        gold_queue_relabel(policy=policy, from_version=policy.versions.get(number=1), queue=relabel_queue, actor=SYSTEM)


def test_relabel_refuses_another_policys_version(policy, version_2, relabel_queue) -> None:
    other = PolicyVersion.objects.exclude(policy=policy).first() or PolicyVersionFactory()
    with pytest.raises(ValidationError, match="not a version"):
        gold_queue_relabel(policy=policy, from_version=other, queue=relabel_queue, actor=SYSTEM)


def test_queue_relabel_command_prints_what_it_queued(policy, gold_v1, version_2, relabel_queue, reviewers) -> None:
    out = io.StringIO()
    args = ["--policy", policy.key, "--from-version", "1", "--queue", relabel_queue.slug]
    call_command("queue_relabel", *args, stdout=out)
    assert "6 relabel tasks opened in relabel" in out.getvalue()
    assert "no item re-decided under the new version yet" in out.getvalue()

    wanted = {item.pk: label for item, label in zip(gold_v1, AFTER, strict=True)}
    label_everything(relabel_queue, reviewers, wanted.__getitem__)
    out = io.StringIO()
    call_command("queue_relabel", *args, stdout=out)
    text = out.getvalue()
    assert "0 current gold labels under v1 or older" in text and "0 relabel tasks opened" in text
    assert "re-decided so far: 6 items, 2 changed label" in text
    assert "violating → not_violating: 2" in text


def test_queue_relabel_command_explains_bad_arguments(policy, gold_v1, relabel_queue) -> None:
    with pytest.raises(CommandError, match="version in force"):
        call_command("queue_relabel", "--policy", policy.key, "--from-version", "1", "--queue", relabel_queue.slug)
    with pytest.raises(CommandError, match="no version 7"):
        call_command("queue_relabel", "--policy", policy.key, "--from-version", "7", "--queue", relabel_queue.slug)
    with pytest.raises(CommandError, match="no queue"):
        call_command("queue_relabel", "--policy", policy.key, "--from-version", "1", "--queue", "nope")
