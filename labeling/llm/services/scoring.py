"""The LLM as an upstream model: a scoring run's answers become `ModelDecision`s.

Decisions go in through the very path of `POST /api/v1/decisions`
(`reviewapp.services.ingest.decisions_ingest`), so the policy's routing rule, audit sampling,
thresholds and the online metrics treat the LLM like any model:

- model name `llm:<reviewer name>`; model version a short hash of (backend model key, prompt
  hash), so a new model or a changed prompt/guideline is a new version, as a retrained model is;
- the score is the model's probability of the policy's violating label, the label-space
  convention of `activelearning.services.datasets.label_space` that routing and the online
  metrics read scores by: the first label not named "not_…", "no_…" or "non_…" (else the first);
  a backend without probabilities scores 1 for an answer of that label and 0 otherwise;
- idempotent: the decision key (item, policy, model name, version) is ingest's idempotency key,
  so recording the same judgements again stores nothing twice;
- an abstention records no decision.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from reviewapp.audit import Actor
from reviewapp.models import ContentItem
from reviewapp.services.ingest import decisions_ingest

from ..backends import backend_for
from ..models import LLMJudgement, LLMReviewer, LLMRun, RunKind
from ..prompting import policy_prompt

logger = logging.getLogger(__name__)

NEGATIVE_PREFIXES = ("not_", "no_", "non_")
MODEL_NAME_PREFIX = "llm:"


def violating_label(label_values: list[str] | tuple[str, ...]) -> str:
    """The label a score is the probability of (see the module docstring)."""
    return next((value for value in label_values if not value.startswith(NEGATIVE_PREFIXES)), label_values[0])


def llm_model_name(reviewer: LLMReviewer) -> str:
    return f"{MODEL_NAME_PREFIX}{reviewer.name}"


def llm_model_version(*, model_key: str, prompt_hash: str) -> str:
    """12 hex digits of sha256(model key, prompt hash): stable across processes and runs."""
    return hashlib.sha256(f"{model_key}\x00{prompt_hash}".encode()).hexdigest()[:12]


@dataclass
class DecisionsRecorded:
    created: int = 0
    duplicate: int = 0
    abstained: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def llm_decisions_record(*, run_id: int, judgement_ids: list[int]) -> DecisionsRecorded:
    """Ingest the plain (non-abstained) judgements of scoring run `run_id` among `judgement_ids`
    as decisions of the run's reviewer. Safe to call again for the same ids (nothing is stored
    twice). Rows ingest refuses (no routing rule for the policy, an inactive policy) come back
    in `errors`, as they would to any upstream model; nothing raises for them.
    """
    run = LLMRun.objects.select_related("reviewer__policy", "reviewer__policy_version").get(pk=run_id)
    if run.kind != RunKind.SCORING:
        raise ValidationError(f"run {run.pk} is a {run.kind} run, not a scoring run")
    reviewer = run.reviewer
    prompt = policy_prompt(reviewer)
    model_version = llm_model_version(model_key=backend_for(reviewer).model_key, prompt_hash=prompt.prompt_hash)
    violating = violating_label(prompt.label_values)
    judgements = list(
        LLMJudgement.objects.filter(run=run, pk__in=judgement_ids, variant="").select_related("item").order_by("pk")
    )
    recorded = DecisionsRecorded(abstained=sum(1 for judgement in judgements if not judgement.label))
    rows = [
        _decision_row(judgement, reviewer=reviewer, model_version=model_version, violating=violating)
        for judgement in judgements
        if judgement.label
    ]
    if not rows:
        return recorded
    result = decisions_ingest(rows=rows, actor=Actor.of(reviewer.account))
    recorded.created = result.created
    recorded.duplicate = sum(1 for row in result.results if row["status"] == "duplicate")
    recorded.errors = result.errors
    if result.errors:  # the engine does not read the result: say it where operators look
        first = result.errors[0]
        logger.warning("llm scoring run %s: %d rows refused by ingest, e.g. %s", run.pk, len(result.errors), first)
    return recorded


def _decision_row(judgement: LLMJudgement, *, reviewer: LLMReviewer, model_version: str, violating: str) -> dict:
    item: ContentItem = judgement.item
    if judgement.scores:
        score = float(judgement.scores.get(violating, 0.0))
    else:
        score = 1.0 if judgement.label == violating else 0.0
    return {
        # The item exists already: ingest keeps the stored item and only needs its identity.
        "source": item.source,
        "external_id": item.external_id,
        "modality": item.modality,
        "policy": reviewer.policy.key,
        "model_name": llm_model_name(reviewer),
        "model_version": model_version,
        "score": min(max(score, 0.0), 1.0),
        "predicted_label": judgement.label,
        "decided_at": judgement.created_at.isoformat(),
    }
