"""What a reviewer sees of a task, through the claim API and the workspace page (reviewapp.projection).

A honeypot and two live tasks share a queue, once open and once blind. Each is claimed by its own
reviewer through the API and shown on that reviewer's workspace page; then neither the JSON nor the
HTML may carry a reference label, tell the honeypot from live work, or (blind) let the model's
score be worked out.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from labeling.models import GoldSource
from labeling.services.gold import gold_record
from labeling.services.honeypots import honeypots_top_up
from reviewapp.audit import SYSTEM
from reviewapp.models import ModelDecision, ReviewTask, TaskReason
from reviewapp.projection import is_reference_key, reviewer_metadata
from reviewapp.services.ingest import decisions_ingest
from tests.factories import ContentItemFactory, UserFactory

# What only the answer key knows: none of it may reach a reviewer.
REFERENCE_LABEL = "ref-label-hate-speech"
CROWD_ANNOTATOR = "crowd-annotator-417"
REFERENCE_METADATA = {
    "language": "en",
    "source_label": REFERENCE_LABEL,
    "source_annotations": [{"annotator": CROWD_ANNOTATOR, "label": REFERENCE_LABEL}],
    "goldLabel": REFERENCE_LABEL,
    "annotator_votes": {CROWD_ANNOTATOR: REFERENCE_LABEL},
}
LIVE_SCORES = (0.3, 0.8)
HONEYPOT_SCORE = 0.55  # inside the live tasks' range, as a honeypot must be on a queue that shows scores


def item_fields(name: str) -> dict[str, Any]:
    """The same shape of content for every item: title, text, one turn of context, reach."""
    return {
        "title": f"{name} title",
        "text": f"{name}: you are a clown and everyone knows it",
        "context": [{"author": f"{name}-author", "text": "earlier turn"}],
        "reach": 5000,
    }


def live_row(index: int, score: float) -> dict[str, Any]:
    return {
        "source": "comments",
        "external_id": f"live-{index}",
        **item_fields(f"live-{index}"),
        "metadata": {"language": "en"},
        "policy": "harassment",
        "model_name": "toxbert",
        "model_version": "7",
        "score": score,
        "predicted_label": "violating",
        "evidence_spans": [{"start": 0, "end": 6, "label": "insult"}],
    }


@pytest.fixture
def mixed_queue(policy, queue, routing_rule):  # type: ignore[no-untyped-def]
    """Two live tasks ingested through the router, and one honeypot drawn from a gold item.

    The gold item came from a labelled dataset (its metadata carries the dataset's and the crowd's
    labels, as `items_import` writes them) and was scored by the model earlier.
    """
    result = decisions_ingest(rows=[live_row(i, s) for i, s in enumerate(LIVE_SCORES)], actor=SYSTEM)
    assert result.errors == [] and all(r["task_id"] for r in result.results)
    gold_item = ContentItemFactory(external_id="gold-1", metadata=REFERENCE_METADATA, **item_fields("gold-1"))
    ModelDecision.objects.create(
        item=gold_item,
        policy=policy,
        model_name="toxbert",
        model_version="7",
        score=HONEYPOT_SCORE,
        predicted_label="violating",
        evidence_spans=[{"start": 0, "end": 6, "label": "insult"}],
        routing_outcome="review",
        sampling_propensity=1.0,
    )
    gold_record(
        item_id=gold_item.pk,
        policy_version=policy.current_version(),
        labels=["violating"],
        source=GoldSource.ADJUDICATION,
        actor=SYSTEM,
    )
    queue.honeypot_rate = 0.5
    queue.save(update_fields=["honeypot_rate"])
    assert honeypots_top_up(queue=queue) == 1
    return queue


def claim_as_new_reviewer(queue, make_token, n: int) -> tuple[dict[str, Any], str]:  # type: ignore[no-untyped-def]
    """Claim through the API as a fresh reviewer, then open that reviewer's workspace page."""
    reviewer = UserFactory(username=f"projection-rev-{n}")
    queue.members.add(reviewer)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'], user=reviewer)}")
    response = api.post(f"/api/v1/queues/{queue.pk}/claim")
    assert response.status_code == 200, response.content
    page = Client()
    page.force_login(reviewer)
    return response.json(), workspace_item_html(page, queue)


def workspace_item_html(client: Client, queue) -> str:  # type: ignore[no-untyped-def]
    """The reviewer's held task as the workspace page shows it (the `<article class="item">`)."""
    html = client.get(f"/queues/{queue.pk}/work").content.decode()
    article = re.search(r'<article class="item".*?</article>', html, re.S)
    assert article, html
    return article.group(0)


def shape(value: Any, path: str = "") -> set[str]:
    """Every key path of a JSON value (list positions folded), e.g. {"item.context[].author", ...}."""
    if isinstance(value, dict):
        paths = set()
        for key, inner in value.items():
            paths |= {f"{path}.{key}"} | shape(inner, f"{path}.{key}")
        return paths
    if isinstance(value, list):
        return set().union(*(shape(inner, f"{path}[]") for inner in value)) if value else {f"{path}[]"}
    return set()


def skeleton(html: str) -> list[str]:
    """The page's structure without its text: each tag with its class, in order."""
    return re.findall(r"<([a-z0-9]+)(?:[^>]*?\sclass=\"([^\"]*)\")?", html)  # type: ignore[return-value]


def keys_anywhere(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(keys_anywhere(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_anywhere(v) for v in value)) if value else set()
    return set()


@pytest.mark.parametrize("blind", [False, True], ids=["open-queue", "blind-queue"])
def test_a_honeypot_is_indistinguishable_and_carries_no_answer_key(mixed_queue, make_token, blind) -> None:
    if blind:
        mixed_queue.blind_review = True
        mixed_queue.save(update_fields=["blind_review"])
    shown = [claim_as_new_reviewer(mixed_queue, make_token, n) for n in range(3)]
    tasks = {t.pk: t for t in ReviewTask.objects.filter(queue=mixed_queue).select_related("decision")}
    assert sorted(tasks[body["id"]].reason == TaskReason.HONEYPOT for body, _ in shown) == [False, False, True]

    for body, html in shown:
        text = json.dumps(body)
        # (1) No reference label, under any key, in the API or on the page.
        for secret in ("source_label", "source_annotations", "goldLabel", "annotator_votes"):
            assert secret not in text and secret not in html
        for secret in (REFERENCE_LABEL, CROWD_ANNOTATOR):
            assert secret not in text and secret not in html
        assert body["item"]["metadata"] == {"language": "en"}
        # Nothing that is only true of a task behind the scenes: why it was queued, its rank, the item's row id.
        assert {"priority", "reason"}.isdisjoint(keys_anywhere(body))
        assert "id" not in body["item"]
        task = tasks[body["id"]]
        assert f"{task.priority}" not in text and f"{task.priority}" not in html
        if blind:
            # (3) Nothing from which the score can be worked out: no model line, no evidence it chose.
            assert body["model"] is None
            assert "<mark" not in html and "score" not in html.lower() and "toxbert" not in html
        else:
            assert body["model"]["model_name"] == "toxbert" and body["model"]["evidence_spans"]
            if task.reason == TaskReason.HONEYPOT:  # its item's own decision, as live work shows its own
                assert body["model"]["score"] == HONEYPOT_SCORE
            assert "Model <bdi>toxbert@7</bdi>: score" in html and "<mark" in html

    # (2) The honeypot has exactly the fields, and the page exactly the structure, of live work.
    (first_body, first_html), *others = shown
    for body, html in others:
        assert shape(body) == shape(first_body)
        assert skeleton(html) == skeleton(first_html)


def test_a_honeypot_that_would_stand_out_is_not_served_on_an_open_queue(policy, queue, routing_rule) -> None:
    decisions_ingest(rows=[live_row(i, s) for i, s in enumerate(LIVE_SCORES)], actor=SYSTEM)
    unscored = ContentItemFactory(external_id="gold-unscored")  # live work here all shows a model line
    gold_record(
        item_id=unscored.pk,
        policy_version=policy.current_version(),
        labels=["violating"],
        source=GoldSource.ADJUDICATION,
        actor=SYSTEM,
    )
    queue.honeypot_rate = 0.5
    queue.save(update_fields=["honeypot_rate"])
    assert honeypots_top_up(queue=queue) == 0
    queue.blind_review = True  # no model line is shown there, so the same item will do
    queue.save(update_fields=["blind_review"])
    assert honeypots_top_up(queue=queue) == 1


def test_hidden_characters_are_named_per_field_in_the_api(policy, queue, make_token) -> None:
    item = ContentItemFactory(
        title="invoice \u202efdp.exe",
        external_id="id\u200b-7",
        context=[{"author": "ad\u200bmin", "text": "hi"}],
        metadata={"language": "en", "note": "x\u2067y"},
    )
    ReviewTask.objects.create(item=item, policy=policy, queue=queue, reason="low_confidence", due_at=item.created_at)
    body, html = claim_as_new_reviewer(queue, make_token, 0)
    warnings = {w["field"]: w["characters"] for w in body["hidden_characters"]}
    assert warnings == {
        "external id": ["zero-width space"],
        "title": ["right-to-left override"],
        "conversation turn 1 author": ["zero-width space"],
        "metadata “note”": ["right-to-left isolate"],
    }
    assert "Hidden characters in the <bdi>title</bdi>: right-to-left override." in html


@pytest.mark.parametrize(
    ("key", "reference"),
    [
        ("source_label", True),
        ("source_annotations", True),
        ("goldLabel", True),
        ("majority_vote", True),
        ("reference", True),
        ("crowdAnnotators", True),
        ("language", False),
        ("region", False),
        ("surface", False),
        ("source", False),
    ],
)
def test_reference_keys_are_recognised(key: str, reference: bool) -> None:
    assert is_reference_key(key) is reference


def test_reference_keys_are_removed_at_any_depth() -> None:
    nested = {"thread": {"language": "en", "labels": ["x"], "replies": [{"gold": "y", "n": 2}]}}
    assert reviewer_metadata(nested) == {"thread": {"language": "en", "replies": [{"n": 2}]}}
