"""Label-error checks on out-of-fold probabilities, through `manage.py find_label_errors` on real data.

ConvAbuse crowd labels are imported the way a user does (`import_dataset convabuse --as-annotations`),
so gold comes from real consensus; a known set of unanimous gold labels is then flipped by a lead's
re-adjudication (a new gold version). The check must find those flips far above chance, using
probabilities each item got from a head that never trained on it.
"""

from __future__ import annotations

import io
import random
from collections import defaultdict
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from activelearning.models import LabelErrorRun, ModelVersion, OutOfFoldScore, RunStatus
from activelearning.out_of_fold import item_set_sha256
from activelearning.services.out_of_fold import label_error_run_execute, oof_group_keys
from labeling.models import GoldSource, Policy
from labeling.services.gold import gold_record
from labeling.services.label_errors import TRAINED_ON_GOLD_PREFIX
from labeling.services.relabel import gold_current_labels
from reviewapp.audit import Actor
from reviewapp.models import AuditEvent, ContentItem, ReviewTask, TaskReason
from tests.activelearning.test_django_helpers import permission_objects
from tests.factories import QueueFactory, UserFactory

GOLD_ITEMS = 800  # ConvAbuse examples imported; ~780 resolve into consensus gold
FLIPS = 30
TOP = 60
# Small and fast: a linear head over a small hashed n-gram table (the encoder a round uses, smaller).
FAST = (
    "--encoder",
    "hashed",
    "--num-buckets",
    "4096",
    "--head",
    '{"hidden": 0, "max_epochs": 30, "embedding_dim": 32}',
)
OPPOSITE = {"abusive": "not_abusive", "not_abusive": "abusive"}


def import_convabuse(folder: Path, limit: int) -> Policy:
    call_command(
        "import_dataset", "convabuse", str(folder), "--as-annotations", "--limit", str(limit), stdout=io.StringIO()
    )
    return Policy.objects.get(key="abuse")


def flip_unanimous_gold(policy: Policy, n: int) -> dict[int, str]:
    """A lead re-adjudicates `n` unanimous gold labels to the opposite label. Returns item id → flipped label."""
    lead = UserFactory(username="flipping-lead")
    unanimous = [
        gold
        for gold in gold_current_labels(policy=policy).order_by("pk")
        if gold.agreement == 1.0 and gold.labels[0] in OPPOSITE
    ]
    flipped = {}
    for gold in random.Random(14).sample(unanimous, n):
        label = OPPOSITE[gold.labels[0]]
        gold_record(
            item_id=gold.item_id,
            policy_version=policy.current_version(),
            labels=[label],
            source=GoldSource.ADJUDICATION,
            actor=Actor.of(lead),
            adjudicator=lead,
            note="re-adjudicated",
        )
        flipped[gold.item_id] = label
    return flipped


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command("find_label_errors", *args, stdout=out)
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.django_db
def test_flipped_gold_is_found_out_of_fold_and_the_run_says_how(convabuse_dir: Path) -> None:
    policy = import_convabuse(convabuse_dir, GOLD_ITEMS)
    flipped = flip_unanimous_gold(policy, FLIPS)
    QueueFactory(slug="abuse-label-errors")

    output = run_command("--policy", "abuse", "--top-k", str(TOP), "--queue", "abuse-label-errors", *FAST)

    run = LabelErrorRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED and run.k == 5 and run.seed == 0
    gold = gold_current_labels(policy=policy).count()
    assert output.splitlines()[0].startswith(f"out-of-fold run {run.pk}: {gold} gold labels")
    ranked = [int(line.split()[1]) for line in output.splitlines()[2 : 2 + TOP]]
    found = set(ranked) & set(flipped)
    chance = TOP * FLIPS / gold  # flips expected among TOP labels drawn at random: about 2.3
    assert len(found) >= 5 * chance, f"{len(found)} of {FLIPS} flips in the top {TOP} (chance {chance:.1f})"
    for issue in run.candidates:
        if issue["item_id"] in flipped:
            assert issue["given"] == flipped[issue["item_id"]] != issue["suggested"]

    # What produced the probabilities is recorded on the run.
    assert run.encoder == "hashed" and run.encoder_id.startswith("hashed-ngram") and run.encoder_config
    assert run.hyperparameters["hidden"] == 0 and run.hyperparameters["seed"] == 0
    assert run.gold_watermark and len(run.training_set_sha256) == len(run.fold_assignment_sha256) == 64
    assert run.counts["scored"] == gold and run.candidates_found >= len(found)
    assert set(run.timings) >= {"loading", "features", "folds", "confident_learning"}
    assert run.created_by_label == "system" and run.finished_at is not None

    # Every item was scored by the head of its own fold, which was fitted on the other folds only.
    scores = OutOfFoldScore.objects.filter(run=run)
    fold_of = dict(scores.values_list("item_id", "fold"))
    assert len(fold_of) == gold and {f["fold"] for f in run.folds} == set(fold_of.values()) == set(range(5))
    for fold in run.folds:
        others = [item for item, f in fold_of.items() if f != fold["fold"]]
        scored = [item for item, f in fold_of.items() if f == fold["fold"]]
        assert fold["fit_sha256"] == item_set_sha256(others) != item_set_sha256([*others, scored[0]])
        assert fold["n_train"] + fold["n_dev"] == len(others) and fold["n_scored"] == len(scored)
    # Copies of a text share a fold, so no copy taught a head the label it scored.
    items = ContentItem.objects.filter(pk__in=fold_of).order_by("pk")
    by_text = defaultdict(set)
    for item_id, key in zip(items.values_list("pk", flat=True), oof_group_keys([i.text for i in items]), strict=True):
        by_text[key].add(fold_of[item_id])
    assert all(len(folds) == 1 for folds in by_text.values())
    assert len(by_text) < gold - 100  # this data has many copies of short texts
    # The scores recorded are the ones confident learning ranked.
    top = run.candidates[0]
    stored = scores.get(item_id=top["item_id"]).probabilities
    assert stored[top["given"]] == pytest.approx(top["p_given"]) and sum(stored.values()) == pytest.approx(1.0)

    # An ML engineer reads the same record over REST, every item's fold included.
    lead = UserFactory(username="reading-lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)
    body = client.get(f"/api/v1/label-error-runs/{run.pk}", {"scores": "true"}).json()
    assert body["fold_assignment_sha256"] == run.fold_assignment_sha256 and body["folds"] == run.folds
    assert {row["item"]: row["fold"] for row in body["scores"]} == fold_of
    assert "scores" not in client.get(f"/api/v1/label-error-runs/{run.pk}").json()

    # The top suspects went to reviewers, and the audit names the run behind the probabilities.
    tasks = ReviewTask.objects.filter(reason=TaskReason.LABEL_ERROR, queue__slug="abuse-label-errors")
    assert sorted(tasks.values_list("pk", flat=True)) == sorted(run.task_ids) and len(run.task_ids) == TOP
    event = AuditEvent.objects.get(action="label_errors.queued")
    assert event.after["probabilities"] == {
        "source": "out_of_fold",
        "label_error_run": run.pk,
        "encoder": "hashed",
        "k": 5,
        "seed": 0,
    }


@pytest.mark.django_db
def test_a_check_on_too_little_gold_fails_with_the_reason(convabuse_dir: Path) -> None:
    import_convabuse(convabuse_dir, 30)
    with pytest.raises(CommandError, match="usable gold labels; a check needs at least 50"):
        run_command("--policy", "abuse", *FAST)
    run = LabelErrorRun.objects.get()
    assert run.status == RunStatus.FAILED and "a check needs at least 50" in run.error
    assert AuditEvent.objects.filter(action="label_error_run.failed", object_id=str(run.pk)).exists()


@pytest.mark.django_db
def test_bad_settings_are_refused_before_anything_runs(convabuse_dir: Path) -> None:
    import_convabuse(convabuse_dir, 5)
    with pytest.raises(CommandError, match="must be between 2 and 20"):
        run_command("--policy", "abuse", "--k", "1")
    with pytest.raises(CommandError, match="choose one of"):
        run_command("--policy", "abuse", "--encoder", "bert")
    with pytest.raises(CommandError, match="use it with --source upstream"):
        run_command("--policy", "abuse", "--model", "tox-bert")
    assert not LabelErrorRun.objects.exists()


@pytest.mark.django_db
def test_every_model_this_product_registers_is_refused_as_an_upstream_scorer(policy) -> None:
    version = ModelVersion.objects.get(pk=permission_objects(policy)["model_id"])
    assert version.model_name.startswith(TRAINED_ON_GOLD_PREFIX)
    with pytest.raises(CommandError, match="trains on gold labels"):
        run_command("--policy", policy.key, "--source", "upstream", "--model", version.model_name)


@pytest.mark.slow
@pytest.mark.django_db
def test_a_check_is_deterministic_for_a_seed_and_runs_once(convabuse_dir: Path) -> None:
    import_convabuse(convabuse_dir, 300)
    small = ("--policy", "abuse", "--k", "3", *FAST)
    run_command(*small)
    run_command(*small)
    run_command(*small, "--seed", "1")
    first, again, other = LabelErrorRun.objects.order_by("pk")
    assert first.fold_assignment_sha256 == again.fold_assignment_sha256 != other.fold_assignment_sha256
    assert [{**fold, "seconds": 0} for fold in first.folds] == [{**fold, "seconds": 0} for fold in again.folds]
    assert first.training_set_sha256 == other.training_set_sha256  # same gold, other folds

    def scores(run: LabelErrorRun) -> dict[int, dict[str, float]]:
        return dict(OutOfFoldScore.objects.filter(run=run).values_list("item_id", "probabilities"))

    assert scores(first) == scores(again) != scores(other)
    assert first.candidates == again.candidates
    # A redelivered task for a finished run does nothing.
    assert label_error_run_execute(run_id=first.pk) is None
    assert OutOfFoldScore.objects.filter(run=first).count() == first.counts["scored"]
