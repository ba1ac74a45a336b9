"""Outcomes for reviewers: where a lead's adjudication or an appeal overturned their answer.

An overturn is a gold label from a lead's adjudication or from an appeal whose labels differ from
a reviewer's live answer on the same item and policy (given before that gold label), and that
changed the item's outcome: the first gold label of the item, or one whose labels differ from the
gold label it supersedes (an appeal that upholds the outcome overturns nobody twice). LLM answers
are machines', not a person's: they are never reported. The reviewer who made the gold label (a
lead also reviewing, an appeals reviewer) is not told about their own decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import connection
from django.urls import reverse

from reviewapp.services.notifications import notify

from ..models import Annotation, AnnotationSource, GoldLabel, GoldSource

OVERTURNING_SOURCES = (GoldSource.ADJUDICATION, GoldSource.APPEAL)
EXCERPT_CHARS = 160
MAX_OUTCOMES = 200

# (gold id, annotation id) of each overturn of the reviewer's answers, newest gold label first.
_OVERTURNS_SQL = """
SELECT g.id, a.id
  FROM labeling_annotation a
  JOIN labeling_goldlabel g ON g.item_id = a.item_id AND g.policy_id = a.policy_id
  LEFT JOIN labeling_goldlabel prev ON prev.id = g.supersedes_id
 WHERE a.reviewer_id = %(reviewer)s AND a.retracted_at IS NULL AND a.source <> %(llm)s
   AND g.source = ANY(%(sources)s) AND a.created_at <= g.created_at
   AND g.created_by_id IS DISTINCT FROM a.reviewer_id
   AND NOT (a.labels @> g.labels AND g.labels @> a.labels)
   AND (prev.id IS NULL OR NOT (prev.labels @> g.labels AND g.labels @> prev.labels))
 ORDER BY g.created_at DESC, g.id DESC, a.id DESC
 LIMIT %(limit)s
"""


@dataclass(frozen=True)
class Outcome:
    """One overturned answer, as /outcomes/ and the API show it."""

    gold: GoldLabel
    annotation: Annotation

    @property
    def item_id(self) -> int:
        return self.gold.item_id

    @property
    def excerpt(self) -> str:
        item = self.gold.item
        text = item.title or item.text
        return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"

    @property
    def your_labels(self) -> list[str]:
        version = self.annotation.policy_version
        return [version.label_title(value) for value in self.annotation.labels]

    @property
    def final_labels(self) -> list[str]:
        version = self.gold.policy_version
        return [version.label_title(value) for value in self.gold.labels]

    @property
    def note(self) -> str:
        return self.gold.note

    @property
    def decided_at(self) -> datetime:
        return self.gold.created_at

    @property
    def by_appeal(self) -> bool:
        return self.gold.source == GoldSource.APPEAL

    @property
    def decided_by(self) -> str:
        """'appeal', or the deciding lead's username."""
        if self.by_appeal:
            return "appeal"
        return self.gold.adjudicator.get_username() if self.gold.adjudicator else ""


def outcomes_for(*, reviewer: User, limit: int = MAX_OUTCOMES) -> list[Outcome]:
    """The reviewer's overturned answers, newest first (at most `limit`). Three queries."""
    with connection.cursor() as cursor:
        cursor.execute(
            _OVERTURNS_SQL,
            {
                "reviewer": reviewer.pk,
                "llm": AnnotationSource.LLM,
                "sources": list(OVERTURNING_SOURCES),
                "limit": limit,
            },
        )
        pairs = cursor.fetchall()
    golds = GoldLabel.objects.select_related("item", "policy", "policy_version", "adjudicator").in_bulk(
        {g for g, _ in pairs}
    )
    answers = Annotation.objects.select_related("policy_version").in_bulk({a for _, a in pairs})
    return [Outcome(golds[g], answers[a]) for g, a in pairs]


def outcome_overturns_notify(*, gold: GoldLabel) -> list[int]:
    """Tell each reviewer whose answer `gold` overturned (see the module). Call in the gold label's
    transaction. Returns the reviewers notified. No query for a gold label from consensus."""
    if gold.source not in OVERTURNING_SOURCES:
        return []
    previous = gold.supersedes
    if previous is not None and sorted(previous.labels) == sorted(gold.labels):
        return []
    answers = (
        Annotation.objects.filter(item_id=gold.item_id, policy_id=gold.policy_id, retracted_at__isnull=True)
        .exclude(source=AnnotationSource.LLM)
        .select_related("item")
    )
    if gold.created_by_id is not None:
        answers = answers.exclude(reviewer_id=gold.created_by_id)
    overturned = [a for a in answers if sorted(a.labels) != sorted(gold.labels)]
    if not overturned:
        return []
    item = overturned[0].item
    final = ", ".join(gold.policy_version.label_title(value) for value in gold.labels)
    how = "An appeal" if gold.source == GoldSource.APPEAL else "A lead's decision"
    note = f" Note: {gold.note}" if gold.note else ""
    reviewers = list(dict.fromkeys(a.reviewer_id for a in overturned))
    notify(
        users=reviewers,
        kind="overturned",
        text=f"{how} overturned your answer on item {item.external_id}: the final label is {final}.{note}",
        url=reverse("outcomes"),
    )
    return reviewers
