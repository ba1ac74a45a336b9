"""Leads see a label-error check's ranked suspects and send the ones they choose to re-review.

Gold comes from real ConvAbuse crowd annotations (imported as annotations, resolved by
consensus); a few unanimous labels are flipped by a lead, and an out-of-fold check ranks them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from activelearning.models import LabelErrorRun, LabelErrorTrigger, RunStatus
from activelearning.services.label_error_loop import label_error_runs_start_due
from activelearning.services.out_of_fold import label_error_run_execute, label_error_run_start
from labeling.models import GoldLabel
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ContentItem, ReviewTask, TaskReason
from tests.activelearning.test_django_out_of_fold import flip_unanimous_gold, import_convabuse
from tests.factories import QueueFactory, UserFactory

FAST = {"encoder": "hashed", "num_buckets": 4096, "head": {"hidden": 0, "max_epochs": 30, "embedding_dim": 32}}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def checked(db, convabuse_dir: Path) -> LabelErrorRun:  # type: ignore[no-untyped-def]
    policy = import_convabuse(convabuse_dir, 300)
    flip_unanimous_gold(policy, 5)
    run = label_error_run_start(policy=policy, actor=SYSTEM, params={**FAST, "k": 3, "top_k": 20}, enqueue=False)
    run = label_error_run_execute(run_id=run.pk)
    assert run is not None and run.status == RunStatus.SUCCEEDED and run.candidates, run.error
    return run


def _client(username: str, *, lead: bool) -> Client:
    user = UserFactory(username=username)
    if lead:
        user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.slow
def test_a_lead_sees_ranked_suspects_with_their_evidence_and_sends_some_to_re_review(checked) -> None:
    lead = _client("lead", lead=True)
    queue = QueueFactory(slug="abuse-recheck", name="Abuse re-check")
    first, second = checked.candidates[0], checked.candidates[1]
    ContentItem.objects.filter(pk=first["item_id"]).update(text=HOSTILE)

    page = lead.get(f"/models/label-errors/{checked.pk}/").content.decode()

    # Ranked suspects, escaped, with the gold label, the out-of-fold belief and the run's provenance.
    assert HOSTILE not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.index(f"item {first['item_id']}") < page.index(f"item {second['item_id']}")
    assert f"gold #{first['gold_id']}" in page and f"{first['quality']:.3f}" in page
    assert checked.fold_assignment_sha256[:14] in page and checked.encoder_id in page
    assert all(fold["fit_sha256"][:14] in page for fold in checked.folds)
    consensus = next(
        GoldLabel.objects.get(pk=c["gold_id"])
        for c in checked.candidates
        if GoldLabel.objects.get(pk=c["gold_id"]).annotation_ids
    )
    assert f"gold #{consensus.pk} v{consensus.version}, Reviewer consensus" in page
    assert "×" in page and "agree)" in page  # the annotations behind a consensus label, and their agreement

    chosen = [first["gold_id"], second["gold_id"]]
    response = lead.post(f"/models/label-errors/{checked.pk}/send", {"gold": chosen, "queue_id": queue.pk}, follow=True)

    tasks = ReviewTask.objects.filter(reason=TaskReason.LABEL_ERROR, queue=queue)
    assert sorted(tasks.values_list("item_id", flat=True)) == sorted([first["item_id"], second["item_id"]])
    assert "2 sent to re-review in Abuse re-check" in response.content.decode()
    event = AuditEvent.objects.get(action="label_error_run.sent_to_review")
    assert event.after["gold_ids"] == chosen and event.after["queue"] == "abuse-recheck"
    checked.refresh_from_db()
    assert sorted(checked.task_ids) == sorted(tasks.values_list("pk", flat=True))
    page = response.content.decode()
    assert all(f'value="{g}"' not in page for g in chosen)  # no checkbox any more: the task is shown instead
    assert page.count("in Abuse re-check (open)") == 2

    # A double submit (or a second lead) opens nothing twice and says so.
    again = lead.post(f"/models/label-errors/{checked.pk}/send", {"gold": chosen, "queue_id": queue.pk}, follow=True)
    assert tasks.count() == 2 and AuditEvent.objects.filter(action="label_error_run.sent_to_review").count() == 1
    assert "0 sent to re-review in Abuse re-check (2 already sent)" in again.content.decode()

    # The policy's list and the models page lead to the check.
    listing = lead.get(f"/models/label-errors/?policy={checked.policy.key}").content.decode()
    assert f'href="/models/label-errors/{checked.pk}/"' in listing
    models_page = lead.get(f"/models/?policy={checked.policy.key}").content.decode()
    assert f'href="/models/label-errors/{checked.pk}/"' in models_page


@pytest.mark.slow
def test_bad_sends_are_refused_and_reviewers_get_403(checked) -> None:
    lead = _client("lead", lead=True)
    queue = QueueFactory(slug="abuse-recheck")
    url = f"/models/label-errors/{checked.pk}/send"
    not_a_suspect = (
        GoldLabel.objects.filter(policy=checked.policy)
        .exclude(pk__in=[c["gold_id"] for c in checked.candidates])
        .values_list("pk", flat=True)
        .first()
    )

    refused = lead.post(url, {"gold": [not_a_suspect], "queue_id": queue.pk}, follow=True)
    assert f"Not suspects of run {checked.pk}: {not_a_suspect}." in refused.content.decode()
    assert lead.post(url, {"gold": ["x"], "queue_id": queue.pk}).status_code == 400
    assert lead.post(url, {"gold": [checked.candidates[0]["gold_id"]], "queue_id": 10**9}).status_code == 400
    nothing = lead.post(url, {"queue_id": queue.pk}, follow=True)
    assert "Choose at least one suspect" in nothing.content.decode()

    reviewer = _client("reviewer", lead=False)
    assert reviewer.get(f"/models/label-errors/{checked.pk}/").status_code == 403
    assert reviewer.get("/models/label-errors/").status_code == 403
    sent = reviewer.post(url, {"gold": [checked.candidates[0]["gold_id"]], "queue_id": queue.pk})
    assert sent.status_code == 403
    assert not ReviewTask.objects.filter(reason=TaskReason.LABEL_ERROR).exists()


@pytest.mark.slow
def test_the_beat_starts_a_check_only_when_gold_grew_and_the_last_one_is_old(
    checked, settings, django_capture_on_commit_callbacks
) -> None:
    settings.AL_MIN_GOLD = 50
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert label_error_runs_start_due() == []  # the last check is fresh
    LabelErrorRun.objects.filter(pk=checked.pk).update(created_at=checked.created_at.replace(year=2000))
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert label_error_runs_start_due() == []  # old, but no gold since its watermark
        flip_unanimous_gold(checked.policy, 1)
        (started,) = label_error_runs_start_due()
    assert started.trigger == LabelErrorTrigger.SCHEDULE and started.training_run is None
    assert len(sent) == 1  # its find_label_errors task, after commit
    with django_capture_on_commit_callbacks(execute=False):
        assert label_error_runs_start_due() == []  # one is queued now
