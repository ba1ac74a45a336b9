"""What fills the leads' pages on a first start: crowd answers, appeals, a dataset version, a round.

Everything goes through the services live work uses: answers are stored and resolved by
`crowd_annotations_import` (consensus makes gold, ties open adjudications), appeals by
`appeal_open`, the dataset version by `snapshot_request`, the model by a real active-learning
round (`training_run_start`, carried out by the Celery worker: training, evaluation, promotion,
pool scoring, selection and threshold proposals). Each step is idempotent: it does nothing when
what it makes is already there, so `seed_demo` can run on every start.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from activelearning.models import RunTrigger, TrainingRun
from activelearning.services.rounds import round_gold_shortfall, training_run_start
from labeling.exports.models import Dataset, DatasetSnapshot
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_request
from labeling.llm.models import LLMReviewer
from labeling.llm.services.reviewers import llm_reviewer_create
from labeling.models import Appeal, GoldLabel, Policy
from labeling.services.appeals import appeal_open
from labeling.services.crowd import CrowdImportResult, crowd_annotations_import
from reviewapp.audit import SYSTEM
from reviewapp.models import ConsensusRule, ModelDecision, RoutingOutcome
from reviewapp.services.imports import ImportResult, items_import, queue_ensure

from .corpus import CROWD_DATASET, CROWD_POLICY, CROWD_QUEUE, demo_crowd_records

APPEAL_REF_PREFIX = "demo-appeal-"
DEMO_DATASET = "demo-gold"
# What users write when they contest an outcome; one per appeal, in this order.
APPEAL_STATEMENTS = (
    "This was a joke between two friends. We were both laughing about it and nobody was hurt.",
    "I was quoting what someone said to me so that people could see it, not saying it myself.",
    "The comment was about the argument, not about the person. Please look at the whole thread.",
    "I posted the link once, to my own page. It is not spam and I did not mean to break a rule.",
)


@dataclass(frozen=True)
class DemoCrowd:
    """Items and tasks made for the crowd answers, and what storing and resolving the answers did."""

    items: ImportResult
    answers: CrowdImportResult


def demo_crowd_ensure(*, reviewers: list[str]) -> DemoCrowd:
    """The demo annotators' answers on the extra harassment comments, resolved into gold or adjudication.

    The comments go to their own queue (majority of a strict plurality, ties to leads), which
    the demo `reviewers` join so that an item a lead sends back is served to them.
    """
    policy = Policy.objects.get(key=CROWD_POLICY)
    queue, created = queue_ensure(
        slug=CROWD_QUEUE,
        actor=SYSTEM,
        name="Harassment: annotator panel",
        description="Two or three annotators answer each comment; ties go to leads.",
        required_annotations=1,
        max_annotations=1,
        consensus_rule=ConsensusRule.MAJORITY,
        min_margin=0.0,
        adaptive=False,
        auto_gold=True,
    )
    if created:
        queue.members.add(*User.objects.filter(username__in=reviewers))
    records = demo_crowd_records()
    items = items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
    answers = crowd_annotations_import(records=records, policy=policy, queue=queue, actor=SYSTEM, dataset=CROWD_DATASET)
    return DemoCrowd(items, answers)


def demo_appeals_ensure(*, candidates: list[tuple[str, str, str]]) -> list[Appeal]:
    """Open one appeal, with a user's statement, per candidate (source, external id, policy key).

    Does nothing once any demo appeal exists (a decided one too), so later runs never add more.
    Candidates must have a gold label or an automatic action to contest (see `appeal_open`).
    """
    if Appeal.objects.filter(external_ref__startswith=APPEAL_REF_PREFIX).exists():
        return []
    opened = []
    for number, (source, external_id, policy_key) in enumerate(candidates[: len(APPEAL_STATEMENTS)], start=1):
        result = appeal_open(
            source=source,
            external_id=external_id,
            policy_key=policy_key,
            external_ref=f"{APPEAL_REF_PREFIX}{number}",
            statement=APPEAL_STATEMENTS[number - 1],
            actor=SYSTEM,
        )
        opened.append(result.appeal)
    return opened


def synthetic_appeal_candidates() -> list[tuple[str, str, str]]:
    """Automatic actions of three policies and one gold label of the crowd comments, in a fixed order."""
    candidates: list[tuple[str, str, str]] = []
    for policy_key in ("harassment", "spam", "hate"):
        decision = (
            ModelDecision.objects.filter(policy__key=policy_key, routing_outcome=RoutingOutcome.AUTO_ACTION)
            .select_related("item")
            .order_by("item__external_id", "pk")
            .first()
        )
        if decision is not None:
            candidates.append((decision.item.source, decision.item.external_id, policy_key))
    candidates += gold_appeal_candidates(policy=Policy.objects.get(key=CROWD_POLICY), limit=1)
    return candidates


def gold_appeal_candidates(*, policy: Policy, limit: int) -> list[tuple[str, str, str]]:
    """Items whose first gold label under `policy` is its schema's first label.

    The first label is the violating one in the demo's and the imported datasets' schemas.
    """
    version = policy.current_version()
    if version is None:
        return []
    gold = (
        GoldLabel.objects.filter(policy=policy, version=1, labels=[version.label_values[0]])
        .select_related("item")
        .order_by("item_id")[:limit]
    )
    return [(g.item.source, g.item.external_id, policy.key) for g in gold]


def demo_dataset_ensure(*, policy: Policy) -> str:
    """A dataset of the policy's gold labels with its first version; what was done, for the command's output."""
    if Dataset.objects.filter(slug=DEMO_DATASET).exists():
        return f"dataset {DEMO_DATASET} exists"
    filters = SnapshotFilter(policies=(policy.key,))
    try:
        dataset = dataset_create(
            slug=DEMO_DATASET,
            name=f"{policy.name}: gold labels",
            description="Gold labels of the demo, split by content into train, dev and test.",
            filters=filters,
            actor=SYSTEM,
        )
        built = snapshot_request(dataset=dataset, filters=filters, actor=SYSTEM)
    except ValidationError as error:
        return f"dataset {DEMO_DATASET} not built: {'; '.join(error.messages)}"
    if isinstance(built, DatasetSnapshot):
        return f"dataset {DEMO_DATASET} version 1: {built.row_count:,} gold labels"
    return f"dataset {DEMO_DATASET}: version 1 is being built by the worker"


def demo_round_ensure(*, policy: Policy) -> str:
    """Start the policy's first active-learning round (the worker carries it out); what was done.

    Nothing when the policy has had a round already, or when its gold is too little (the reason
    is returned). The round trains on the current gold with the default encoder, so the models
    page shows it running and then the champion with its charts and a threshold proposal.
    """
    previous = TrainingRun.objects.filter(policy=policy).order_by("pk").first()
    if previous is not None:
        return f"round {previous.pk} of {policy.key} exists ({previous.status})"
    shortfall = round_gold_shortfall(policy=policy)
    if shortfall:
        return f"no round started: {shortfall}"
    run = training_run_start(policy=policy, actor=SYSTEM, params={}, trigger=RunTrigger.NEW_GOLD)
    return f"round {run.pk} of {policy.key} queued for the worker (encoder {run.params['encoder']})"


DEMO_LLM_REVIEWER = "Gemma 3 270M (local)"


def demo_llm_reviewer_ensure(*, policy: Policy) -> str:
    """Configure the local LLM reviewer for the policy (not run: its first run converts the model,
    about a minute, and is the lead's to start from /lead/llm/); what was done."""
    if LLMReviewer.objects.filter(name=DEMO_LLM_REVIEWER).exists():
        return f"LLM reviewer {DEMO_LLM_REVIEWER!r} exists"
    llm_reviewer_create(name=DEMO_LLM_REVIEWER, policy=policy, backend="local", model_name="gemma-3-270m", actor=SYSTEM)
    return f"LLM reviewer {DEMO_LLM_REVIEWER!r} configured for {policy.key} (run it from /lead/llm/)"
