"""The draft evaluation and the scoring path end to end on the real local model, in process.

The run engine (helper llmruns' `services.runs`) answers with Gemma 3 270M; a chunk is processed
here directly instead of by a worker (the worker path is the engine's own test), so what is
checked is that this module reads back exactly what the engine wrote.
"""

from __future__ import annotations

import pytest

from labeling.llm.models import LLMJudgement, LLMReviewer, RunStatus
from labeling.llm.services import runs
from labeling.llm.services.draft_evaluation import draft_evaluation, draft_evaluation_start
from labeling.llm.services.drafts import policy_draft_create
from labeling.llm.services.scoring import llm_model_name
from labeling.llm.services.scoring_jobs import llm_scoring_start
from labeling.models import GoldLabel, Policy
from reviewapp.audit import SYSTEM
from reviewapp.models import ModelDecision, RoutingRule
from tests.factories import BINARY_SCHEMA, ContentItemFactory, ReviewTaskFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

TEXTS = [
    ("you are a worthless idiot and everyone hates you", "violating"),
    ("thanks for the help yesterday, see you soon", "not_violating"),
    ("shut up, nobody wants you here, loser", "violating"),
    ("the recipe needs two eggs and some flour", "not_violating"),
]


@pytest.fixture
def world(policy: Policy, routing_rule: RoutingRule) -> tuple[LLMReviewer, list[int]]:
    reviewer = LLMReviewer.objects.create(
        name="gemma-local",
        policy=policy,
        policy_version=policy.current_version(),
        model_name="gemma-3-270m",
        account=UserFactory(username="llm-gemma-local"),
    )
    item_ids = []
    for text, gold in TEXTS:
        item = ReviewTaskFactory(policy=policy, item=ContentItemFactory(text=text)).item
        GoldLabel.objects.create(
            item=item, policy=policy, policy_version=policy.current_version(), labels=[gold], source="adjudication"
        )
        item_ids.append(item.pk)
    return reviewer, item_ids


def process(run_id: int) -> None:
    while runs.llm_run_process_chunk(run_id=run_id) == "more":
        pass


def test_a_draft_run_of_the_local_model_reads_back_as_an_evaluation(world, policy: Policy) -> None:  # type: ignore[no-untyped-def]
    reviewer, item_ids = world
    draft = policy_draft_create(
        policy=policy,
        title="Any rudeness",
        guideline="Any rude or dismissive remark about a person is violating.",
        label_schema=BINARY_SCHEMA,
        actor=SYSTEM,
    )
    run = draft_evaluation_start(draft=draft, reviewer=reviewer, n=10, actor=SYSTEM)
    process(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    evaluation = draft_evaluation(run=run)
    assert evaluation.planned == evaluation.answered == len(item_ids)
    assert evaluation.answered - evaluation.abstained_current - evaluation.abstained_draft <= evaluation.n
    assert evaluation.n <= evaluation.answered - max(evaluation.abstained_current, evaluation.abstained_draft)
    assert sum(evaluation.confusion.values()) == evaluation.n
    off_diagonal = sum(n for (current, new), n in evaluation.confusion.items() if current != new)
    assert evaluation.flipped == off_diagonal
    assert evaluation.gold_n == evaluation.n  # every sampled item has gold


def test_a_scoring_run_of_the_local_model_writes_one_routed_decision_per_answer(world) -> None:  # type: ignore[no-untyped-def]
    reviewer, item_ids = world
    run = llm_scoring_start(reviewer=reviewer, item_ids=item_ids, actor=SYSTEM)
    process(run.pk)
    answered = {j.item_id: j for j in LLMJudgement.objects.filter(run=run) if j.label}
    decisions = {d.item_id: d for d in ModelDecision.objects.filter(model_name=llm_model_name(reviewer))}
    assert set(decisions) == set(answered) and answered
    for item_id, decision in decisions.items():
        assert decision.score == pytest.approx(answered[item_id].scores["violating"])
        assert decision.routing_rule_id is not None
