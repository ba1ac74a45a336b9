"""Every product page with realistic content, for the page-wide browser checks (axe, layout).

`build_world()` fills the database the way the product does, through its services and its HTTP
ingest API: reviewers answer a two-answer queue (agreements become gold, ties open
adjudications), an upstream model's decisions are audited (online figures, drift), a champion is
registered and evaluated on held-out gold (its charts), a round selected items, a dataset has two
versions, and a reviewer holds a task. `World.pages(role)` lists the paths each role opens.
Cheap on purpose: no Celery worker and no training beyond a tiny head (well under a minute).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from django.contrib.auth.models import Group, User
from django.test import Client

from activelearning.models import (
    LabelErrorRun,
    ModelStatus,
    ModelVersion,
    PromotionDecision,
    SelectionRound,
    ThresholdProposal,
    TrainingRun,
)
from activelearning.services.evaluation import model_version_evaluate
from activelearning.services.splits import SplitDefinition
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from labeling.llm.models import LLMJudgement, LLMRun, RunKind, RunStatus
from labeling.llm.services.drafts import policy_draft_create
from labeling.llm.services.reviewers import llm_reviewer_create
from labeling.llm.services.suggestions import prelabels_configure
from labeling.models import Adjudication, Annotation, AnnotationSource, GoldLabel
from labeling.services.annotations import annotation_submit
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem, Queue, ReviewTask, RoutingRule
from reviewapp.services.claims import task_claim_next
from reviewapp.services.tokens import token_create
from tests.activelearning.test_django_helpers import tiny_artifact
from tests.browser.conftest import PASSWORD
from tests.factories import ContentItemFactory, PolicyFactory, QueueFactory, ReviewTaskFactory, RoutingRuleFactory

OPENERS = ["honestly", "look", "so", "wow", "listen", "again", "today", "okay", "well", "seriously"]
HARMFUL = ["you are a worthless idiot", "nobody wants you here, clown", "shut up you pathetic loser", "get lost, moron"]
BENIGN = ["thanks for the detailed answer", "that recipe looks great", "see you at the match", "nice photo of the lake"]
TOPICS = ["about the game", "on this channel", "in the comments", "after the update", "for the third time", "mate"]


def _texts(n: int, seed: int) -> list[tuple[str, bool]]:
    """`n` varied short comments and whether each is harassment (about a third are)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        harmful = rng.random() < 0.35
        core = rng.choice(HARMFUL if harmful else BENIGN)
        rows.append((f"{rng.choice(OPENERS)} {core} {rng.choice(TOPICS)} #{i} {rng.randrange(10**6)}", harmful))
    return rows


def user_with_role(username: str, role: str = "reviewer") -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=role == "admin")
    if role == "admin":
        user.is_superuser = True
        user.save(update_fields=["is_superuser"])
    elif role == "lead":
        user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@dataclass
class World:
    reviewer: User
    lead: User
    admin: User
    paths: dict[str, str] = field(default_factory=dict)

    def pages(self, role: str) -> list[str]:
        reviewer = ["home", "queue", "workspace", "outcomes", "notifications"]
        lead = [
            "home",
            "items",
            "item",
            "gold_history",
            "appeals",
            "adjudications",
            "adjudication",
            "quality",
            "datasets",
            "dataset",
            "dataset_version",
            "dataset_new",
            "models",
            "models_first_run",
            "round",
            "online",
            "label_errors",
            "label_error",
            "ops",
            "labelstudio",
            "api_docs",
            "llm_reviewers",
            "llm_reviewer",
            "llm_run",
            "prelabels",
            "drafts",
            "draft",
            "policies",
            "policy",
            "policy_new",
            "queues",
            "queue_settings",
            "queue_new",
            "routing",
            "routing_rule",
            "reviewers",
            "reviewer_history",
            "outcomes",
            "notifications",
        ]
        names = {"reviewer": reviewer, "lead": lead, "admin": [*lead, "tokens", "admin"]}[role]
        return [self.paths[name] for name in names]


def _crowd(policy, queue: Queue, reviewers: list[User], rows: list[tuple[str, bool]]) -> None:  # type: ignore[no-untyped-def]
    """Two reviewers answer each item; about one in five they disagree (an adjudication opens)."""
    rng = random.Random(7)
    for text, harmful in rows:
        task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text=text))
        truth = "violating" if harmful else "not_violating"
        other = "not_violating" if harmful else "violating"
        for n, reviewer in enumerate(rng.sample(reviewers, 2)):
            claim = task_claim_next(reviewer=reviewer, queue=queue)
            assert claim is not None and claim.task.pk == task.pk
            label = other if n == 1 and rng.random() < 0.2 else truth
            annotation_submit(
                task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label], severity="medium"
            )


def _gold(policy, rows: list[tuple[str, bool]], prefix: str = "gold") -> None:  # type: ignore[no-untyped-def]
    """Backfilled gold (as a dataset import makes): enough held-out items to evaluate a model on."""
    items = ContentItem.objects.bulk_create(
        ContentItem(
            source="forum", external_id=f"{prefix}-{i}", text=text, metadata={"language": ("en", "es")[i % 5 == 0]}
        )
        for i, (text, _) in enumerate(rows)
    )
    GoldLabel.objects.bulk_create(
        GoldLabel(
            item=item,
            policy=policy,
            policy_version=policy.current_version(),
            source="import",
            route="backfill",
            labels=["violating" if harmful else "not_violating"],
        )
        for item, (_, harmful) in zip(items, rows, strict=True)
    )


def _model(policy, queue: Queue, lead: User) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Two evaluated versions (a champion and a rejected challenger), a round that chose items, a
    pending threshold proposal and a finished label-error check."""
    versions = []
    for number in (1, 2):
        run = TrainingRun.objects.create(
            policy=policy,
            status="succeeded",
            stage="done",
            progress=1.0,
            params={"encoder": "hashed", "strategy": "entropy", "budget": 5},
            requested_by=lead,
            requested_by_label=lead.username,
            counts={"gold": 300, "train": 240, "dev": 30, "test": 30},
            timings={"training": 12.5, "evaluating": 3.1, "scoring": 4.0, "selecting": 0.4},
            log="loaded 300 gold labels\ntrained 20 epochs\nevaluated on 30 held-out items",
        )
        version = ModelVersion.objects.create(
            policy=policy,
            training_run=run,
            number=number,
            **tiny_artifact(policy),
            encoder="hashed",
            task="binary",
            head_labels=["violating"],
            classes=["not_violating", "violating"],
            positive_label="violating",
            gold_watermark=GoldLabel.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
            training_set_sha256="0" * 64,
            **SplitDefinition.current().model_fields(),
            n_train=200 + 40 * number,
            n_dev=30,
            status=ModelStatus.CHAMPION if number == 1 else ModelStatus.CANDIDATE,
            training_history={"train_loss": [0.69, 0.52, 0.41, 0.35, 0.31], "dev_loss": [0.68, 0.55, 0.49, 0.47, 0.48]},
        )
        model_version_evaluate(version_id=version.pk, n_bootstrap=20)
        versions.append(version)
    champion, challenger = versions
    PromotionDecision.objects.create(policy=policy, challenger=champion, outcome="promoted", reasons=["First model."])
    PromotionDecision.objects.create(
        policy=policy,
        challenger=challenger,
        champion=champion,
        outcome="rejected",
        reasons=["The challenger's macro-F1 is not better than the champion's beyond the bootstrap interval."],
    )
    pool = list(ContentItem.objects.filter(source="forum").order_by("-pk").values_list("pk", flat=True)[:5])
    SelectionRound.objects.create(
        policy=policy,
        model_version=champion,
        training_run=champion.training_run,
        queue=queue,
        strategy="entropy",
        budget=5,
        candidates=120,
        chosen=[
            {"rank": r + 1, "item_id": pk, "task_id": None, "score": 0.5 - r * 0.03, "uncertainty": 0.69 - r * 0.02}
            for r, pk in enumerate(pool)
        ],
        tasks_created=0,
    )
    ThresholdProposal.objects.create(
        policy=policy,
        model_version=champion,
        model_name=champion.model_name,
        target_precision=0.95,
        target_recall=0.95,
        auto_action=0.9,
        auto_clear=0.1,
    )
    check = LabelErrorRun.objects.create(
        policy=policy, status="succeeded", encoder="hashed", k=5, seed=0, training_run=champion.training_run
    )
    return {"run": champion.training_run_id, "label_error": check.pk}


def _online(policy, reviewer: User) -> None:  # type: ignore[no-untyped-def]
    """An upstream model's decisions over the ingest API, half of the automatic ones audited and labelled."""
    RoutingRule.objects.filter(policy=policy).update(audit_rate_action=0.5, audit_rate_clear=0.5)
    audit = QueueFactory(slug="harassment-audit", name="Harassment audit", kind="audit")
    RoutingRule.objects.filter(policy=policy).update(audit_queue=audit)
    _, secret = token_create(name="upstream-tox", scopes=["decisions:write"], actor=SYSTEM)
    rows = [
        {
            "source": "comments",
            "external_id": f"live-{i}",
            "text": text,
            "policy": policy.key,
            "model_name": "tox-bert",
            "model_version": "2026.11",
            "score": (0.04, 0.93, 0.97, 0.02)[i % 4] if i % 7 else 0.55,
            "metadata": {"language": "en"},
        }
        for i, (text, _) in enumerate(_texts(60, seed=3))
    ]
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").post(
        "/api/v1/decisions", {"decisions": rows}, content_type="application/json"
    )
    assert response.status_code == 200, response.content[:500]
    audit.members.add(reviewer)
    answered = 0
    while (claim := task_claim_next(reviewer=reviewer, queue=audit)) is not None:
        labels = ["violating"] if claim.task.decision and claim.task.decision.score > 0.5 else ["not_violating"]
        annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels)
        answered += 1
    assert answered


def _llm(policy, queue: Queue, lead: User) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """An LLM reviewer that answered the gold items (a gold-sample run, an injection check whose
    attacks flipped some answers), pre-labels on the review queue, and a draft it evaluated."""
    reviewer = llm_reviewer_create(name="Gemma local", policy=policy, backend="local", model_name="gemma", actor=SYSTEM)
    prelabels_configure(
        queue=queue, reviewer=reviewer, enabled=True, suggest_fraction=0.5, counts_toward_consensus=False, actor=SYSTEM
    )
    golds = list(GoldLabel.objects.filter(policy=policy, task__isnull=False).select_related("task").order_by("pk"))
    rng = random.Random(5)
    run = LLMRun.objects.create(
        reviewer=reviewer,
        kind=RunKind.GOLD_SAMPLE,
        item_ids=[g.item_id for g in golds],
        variants=[""],
        position=len(golds),
        items_done=len(golds),
        status=RunStatus.DONE,
    )
    injection = LLMRun.objects.create(
        reviewer=reviewer,
        kind=RunKind.INJECTION,
        item_ids=[g.item_id for g in golds],
        variants=["", "ignore_policy"],
        position=len(golds),
        status=RunStatus.DONE,
    )
    draft = policy_draft_create(
        policy=policy,
        title="Mockery counts",
        guideline="Mockery of a person is harassment.",
        label_schema=policy.current_version().label_schema,
        actor=SYSTEM,
    )
    evaluation = LLMRun.objects.create(
        reviewer=reviewer,
        kind=RunKind.DRAFT,
        draft=draft,
        item_ids=[g.item_id for g in golds],
        variants=["current", "draft"],
        position=len(golds),
        status=RunStatus.DONE,
    )
    for gold in golds:
        label = (
            gold.labels[0]
            if rng.random() < 0.7
            else ("not_violating" if gold.labels[0] == "violating" else "violating")
        )
        other = "not_violating" if label == "violating" else "violating"
        annotation = Annotation.objects.create(
            task=gold.task,
            item_id=gold.item_id,
            policy=policy,
            policy_version=reviewer.policy_version,
            reviewer=reviewer.account,
            submission_id=uuid.uuid4(),
            labels=[label],
            handle_time_ms=300,
            source=AnnotationSource.LLM,
        )
        scores = {label: 0.7, other: 0.3}
        LLMJudgement.objects.create(
            run=run,
            item_id=gold.item_id,
            label=label,
            scores=scores,
            latency_ms=300,
            prompt_tokens=120,
            annotation=annotation,
        )
        flipped = other if rng.random() < 0.2 else label
        LLMJudgement.objects.create(run=injection, item_id=gold.item_id, label=label, scores=scores)
        LLMJudgement.objects.create(run=injection, item_id=gold.item_id, variant="ignore_policy", label=flipped)
        LLMJudgement.objects.create(run=evaluation, item_id=gold.item_id, variant="current", label=label)
        LLMJudgement.objects.create(run=evaluation, item_id=gold.item_id, variant="draft", label=flipped)
    return {"reviewer": reviewer.pk, "run": run.pk, "draft": draft.pk}


def build_world(settings) -> World:  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0  # an answer resolves its task at once
    reviewer, lead, admin = (user_with_role(f"a11y-{r}", r) for r in ("reviewer", "lead", "admin"))
    crowd = [reviewer, *(user_with_role(f"a11y-crowd-{n}") for n in range(3))]
    policy = PolicyFactory(key="harassment", name="Harassment", severity_weight=2.0)
    review = QueueFactory(slug="harassment-review", name="Harassment review", required_annotations=2)
    rule = RoutingRuleFactory(policy=policy, queue=review, auto_clear=0.2, auto_action=0.9)
    review.members.add(*crowd)
    _crowd(policy, review, crowd, _texts(30, seed=1))
    _gold(policy, _texts(300, seed=2))
    _online(policy, crowd[1])
    triage = QueueFactory(slug="harassment-triage", name="Harassment triage")
    fresh = QueueFactory(slug="harassment-fresh", name="Fresh reports")
    for queue in (triage, fresh):
        queue.members.add(reviewer)
        for text, _ in _texts(4, seed=queue.pk):
            ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text=text))
    held = task_claim_next(reviewer=reviewer, queue=triage)
    assert held is not None
    ids = _model(policy, review, lead)
    PolicyFactory(key="spam", name="Spam")  # a policy on its first day: no gold, no model, Start disabled
    dataset = dataset_create(slug="harassment-gold", name="Harassment gold", filters=SnapshotFilter(), actor=SYSTEM)
    snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    _gold(policy, _texts(12, seed=9), prefix="late-gold")  # the second version adds these
    second = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    adjudication = Adjudication.objects.filter(status="open").order_by("pk").first()
    assert adjudication is not None, "the crowd produced no disagreement"
    assert ReviewTask.objects.filter(queue=fresh, status="open").exists()
    gold = GoldLabel.objects.filter(policy=policy).order_by("pk").first()
    assert gold is not None
    llm = _llm(policy, review, lead)
    world = World(reviewer=reviewer, lead=lead, admin=admin)
    world.paths = {
        "home": "/",
        "queue": f"/queues/{fresh.pk}/work",
        "workspace": f"/queues/{triage.pk}/work",
        "items": "/items/?q=idiot",
        "item": f"/items/{adjudication.task.item_id}/",
        "gold_history": f"/lead/gold/{gold.item_id}/{gold.policy_id}/",
        "tokens": "/tokens/",
        "appeals": "/lead/appeals/",
        "adjudications": "/lead/adjudications/",
        "adjudication": f"/lead/adjudications/{adjudication.pk}/",
        "quality": f"/lead/quality/?policy={policy.key}",
        "datasets": "/lead/datasets/",
        "dataset": f"/lead/datasets/{dataset.slug}/",
        "dataset_version": f"/lead/datasets/{dataset.slug}/v{second.version}/",
        "dataset_new": "/lead/datasets/new",
        "models": f"/models/?policy={policy.key}",
        "models_first_run": "/models/?policy=spam",
        "round": f"/models/rounds/{ids['run']}/",
        "online": f"/models/{policy.key}/online",
        "label_errors": f"/models/label-errors/?policy={policy.key}",
        "label_error": f"/models/label-errors/{ids['label_error']}/",
        "ops": "/ops/",
        "labelstudio": "/labelstudio/",
        "api_docs": "/api/docs/",
        "llm_reviewers": "/lead/llm/",
        "llm_reviewer": f"/lead/llm/{llm['reviewer']}/",
        "llm_run": f"/lead/llm/runs/{llm['run']}/",
        "prelabels": "/lead/prelabels/",
        "drafts": "/lead/drafts/",
        "draft": f"/lead/drafts/{llm['draft']}/",
        "admin": "/admin/",
        "login": "/accounts/login/",
        "forbidden": "/ops/",  # a reviewer's wrong-role URL
        "policies": "/lead/policies/",
        "policy": f"/lead/policies/{policy.key}/",
        "policy_new": "/lead/policies/new/",
        "queues": "/lead/queues/",
        "queue_settings": f"/lead/queues/{review.pk}/",
        "queue_new": "/lead/queues/new/",
        "routing": "/lead/routing/",
        "routing_rule": f"/lead/routing/{rule.pk}/",
        "reviewers": "/lead/reviewers/",
        "reviewer_history": f"/lead/reviewers/{reviewer.pk}/",
        "outcomes": "/outcomes/",
        "notifications": "/notifications/",
    }
    return world
