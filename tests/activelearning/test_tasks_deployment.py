"""Shadow, then live, then rollback: a policy's model scores new content through a real Celery worker.

Content arrives over the HTTP ingest API (for another policy, from an upstream model); the
worker's `scoring` queue scores it with the deployed versions of `abuse`:
- promoted → shadow: `al-abuse@v1` decisions are recorded with the shadow outcome, no task;
- a lead switches it live on the models page: new items get routed `al-abuse@v1` decisions under
  the approved thresholds (above auto-action → auto-enforced, in between → queued);
- another version live, then rollback: the previous version's decisions again;
- a scoring task delivered again creates no second decision; reviewers get 403 on every switch.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.test import Client

from activelearning.models import ModelDeployment, ModelVersion, ThresholdProposal, TrainingRun
from activelearning.services.deployment import deployed_items_score, deployed_items_sweep
from activelearning.services.features import encoder_from_stored, item_features
from activelearning.services.promotion import model_version_promote
from activelearning.services.registry import head_probs
from activelearning.services.rounds import training_run_finish, training_run_start
from activelearning.services.training import training_run_execute
from activelearning.tasks import score_deployed
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ContentItem, ModelDecision, ReviewTask
from reviewapp.services.tokens import token_create
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, load_items, model_files, records  # noqa: F401
from tests.factories import PolicyFactory, QueueFactory, RoutingRuleFactory, UserFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("model_files")]
_SEQ = itertools.count()


def _user(name: str, lead: bool) -> Client:
    user = UserFactory(username=name)
    if lead:
        user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(user)
    return client


def _train(policy, capture) -> ModelVersion:  # type: ignore[no-untyped-def]
    with capture(execute=False):
        run = training_run_start(policy=policy, actor=SYSTEM, params={**FAST_ROUND, "pipeline": "train"})
    with capture(execute=True):
        version = training_run_execute(run_id=run.pk)
    training_run_finish(run_id=run.pk)
    return version


def _copy(version: ModelVersion) -> ModelVersion:
    """Another registered version (v2) with the same artifact: what deployment does not care about."""
    run = TrainingRun.objects.create(policy=version.policy, status="succeeded", stage="done", params={})
    fields = {f.name: getattr(version, f.name) for f in ModelVersion._meta.concrete_fields if not f.primary_key}
    return ModelVersion.objects.create(**{**fields, "training_run": run, "number": 2, "status": "candidate"})


def _scores(version: ModelVersion, texts: list[str]) -> np.ndarray:
    encoder = encoder_from_stored(version.encoder_config)
    features = item_features(encoder, item_ids=list(range(len(texts))), texts=texts, embeddings=[None] * len(texts))
    return head_probs(version, features.features)[:, version.head_labels.index(version.positive_label)]


def _ingest(upstream: Client, texts: list[str]) -> list[int]:
    """Items for the policy `other`, scored by an upstream model; returns their ids."""
    rows = [
        {
            "source": "chat",
            "external_id": f"m-{next(_SEQ)}",
            "text": text,
            "policy": "other",
            "model_name": "upstream",
            "model_version": "3",
            "score": 0.5,
        }
        for text in texts
    ]
    response = upstream.post("/api/v1/decisions", {"decisions": rows}, content_type="application/json")
    assert response.status_code == 200, response.content
    return [r["item_id"] for r in response.json()["results"]]


def _decisions(version: str, item_ids: list[int]) -> list[ModelDecision]:
    found = ModelDecision.objects.filter(model_name="al-abuse", model_version=version, item_id__in=item_ids)
    return list(found.order_by("item_id"))


def _all_decided(version: str, item_ids: list[int]) -> list[ModelDecision] | None:
    found = _decisions(version, item_ids)
    return found if len(found) == len(item_ids) else None


def test_shadow_then_live_then_rollback(  # type: ignore[no-untyped-def]
    transactional_db, celery_worker_process, django_capture_on_commit_callbacks, settings
) -> None:
    policy, abuse_queue = al_policy("abuse")
    load_items(policy, "convabuse", items=820, gold=800)
    other = PolicyFactory(key="other")
    RoutingRuleFactory(policy=other, queue=QueueFactory(slug="other-review"))
    _, secret = token_create(name="upstream", scopes=["decisions:write"], actor=SYSTEM)
    upstream = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    lead, reviewer = _user("lead", True), _user("reviewer", False)
    texts = [r.text for r in records("convabuse", 1400)[820:] if r.text.strip()]

    # Promotion puts the champion in shadow; nothing of the policy is live.
    v1 = _train(policy, django_capture_on_commit_callbacks)
    assert model_version_promote(version_id=v1.pk).outcome == "promoted"
    deployment = ModelDeployment.objects.get(policy=policy)
    assert deployment.shadow_id == v1.pk and deployment.live_id is None
    assert AuditEvent.objects.filter(action="model.deployed_shadow", actor_label="system").count() == 1

    # Shadow: decisions recorded for items of another policy, routing nothing.
    shadow_items = _ingest(upstream, texts[:8])
    shadowed = wait_for(lambda: _all_decided("v1", shadow_items), timeout=60)
    assert {d.routing_outcome for d in shadowed} == {"shadow"} and not any(d.audit_sampled for d in shadowed)
    assert not ReviewTask.objects.filter(policy=policy).exists()

    # Reviewers cannot switch anything, on the page or over REST.
    assert reviewer.post(f"/models/versions/{v1.pk}/deploy", {"mode": "live", "confirm": "yes"}).status_code == 403
    api = {"content_type": "application/json"}
    assert reviewer.post(f"/api/v1/models/{v1.pk}/deploy", {"mode": "live"}, **api).status_code == 403
    assert reviewer.post("/api/v1/models/abuse/rollback", **api).status_code == 403
    assert ModelDeployment.objects.get(policy=policy).live_id is None

    # A lead approves thresholds between two new items' scores, then switches v1 live (confirmed).
    candidates = texts[8:60]
    scores = _scores(v1, candidates)
    order = np.argsort(scores)
    high, middle = candidates[order[-1]], candidates[order[len(order) // 2]]
    s_high, s_middle = float(scores[order[-1]]), float(scores[order[len(order) // 2]])
    assert s_high > s_middle > 0
    proposal = ThresholdProposal.objects.create(
        policy=policy,
        model_version=v1,
        model_name="al-abuse",
        target_precision=0.9,
        target_recall=0.9,
        auto_action=round((s_high + s_middle) / 2, 6),
        auto_clear=round(s_middle / 2, 6),
    )
    assert lead.post(f"/models/proposals/{proposal.pk}/approve").status_code == 302
    unconfirmed = lead.post(f"/models/versions/{v1.pk}/deploy", {"mode": "live"})
    assert unconfirmed.status_code == 302 and ModelDeployment.objects.get(policy=policy).live_id is None
    assert lead.post(f"/models/versions/{v1.pk}/deploy", {"mode": "live", "confirm": "yes"}).status_code == 302
    deployment = ModelDeployment.objects.get(policy=policy)
    assert deployment.live_id == v1.pk and deployment.shadow_id is None
    switched = AuditEvent.objects.get(action="model.deployed_live")
    assert switched.actor_label == "lead" and switched.before["live"] is None and switched.after["live"] == v1.pk

    live_items = _ingest(upstream, [high, middle])
    decided = {d.item_id: d for d in wait_for(lambda: _all_decided("v1", live_items), timeout=60)}
    enforced, queued = decided[live_items[0]], decided[live_items[1]]
    assert enforced.routing_outcome == "auto_action" and enforced.routing_rule.model_name == "al-abuse"
    assert enforced.auto_action_threshold == proposal.auto_action
    assert not ReviewTask.objects.filter(decision=enforced).exists()
    assert queued.routing_outcome == "review"
    task = ReviewTask.objects.get(decision=queued)
    assert task.policy_id == policy.pk and task.queue_id == abuse_queue.pk
    assert AuditEvent.objects.filter(action="decision.ingested", actor_label="al-abuse@v1").count() >= 2

    # v2 in shadow beside the live v1 (REST, lead session): the models page compares them.
    v2 = _copy(v1)
    response = lead.post(f"/api/v1/models/{v2.pk}/deploy", {"mode": "shadow", "shadow_days": 2}, **api)
    assert response.status_code == 200 and response.json()["shadow"] == v2.pk, response.content
    both = _ingest(upstream, texts[60:66])
    wait_for(lambda: _all_decided("v2", both) and _all_decided("v1", both), timeout=60)
    page = lead.get("/models/?policy=abuse").content.decode()
    assert 'Same predicted label</th><td class="num">6 of 6' in page and "Switch v2 live" in page

    # v2 live, then rollback: v1's decisions again, and none of v2 after it.
    assert lead.post(f"/api/v1/models/{v2.pk}/deploy", {"mode": "live"}, **api).json()["previous_live"] == v1.pk
    after_v2 = _ingest(upstream, texts[66:70])
    assert {d.routing_outcome for d in wait_for(lambda: _all_decided("v2", after_v2), timeout=60)} <= {
        "auto_action",
        "auto_clear",
        "review",
    }
    rolled = lead.post("/api/v1/models/abuse/rollback", **api)
    assert rolled.status_code == 200 and rolled.json()["live"] == v1.pk and rolled.json()["previous_live"] == v2.pk
    event = AuditEvent.objects.get(action="model.rolled_back")
    assert (event.before["live"], event.after["live"], event.actor_label) == (v2.pk, v1.pk, "lead")
    after_rollback = _ingest(upstream, texts[70:74])
    wait_for(lambda: _all_decided("v1", after_rollback), timeout=60)

    # Redelivered scoring tasks: two more deliveries of the same items, then a later batch; the
    # single worker process takes the scoring queue in order, so the repeats ran once that one is done.
    tasks_before = ReviewTask.objects.filter(decision__in=_decisions("v1", after_rollback)).count()
    score_deployed.delay(after_rollback)
    score_deployed.delay(after_rollback)
    later = _ingest(upstream, texts[74:76])
    wait_for(lambda: _all_decided("v1", later), timeout=60)
    assert len(_decisions("v1", after_rollback)) == len(after_rollback)
    assert ReviewTask.objects.filter(decision__in=_decisions("v1", after_rollback)).count() == tasks_before
    assert not _decisions("v2", after_rollback + later)
    assert deployed_items_score(item_ids=after_rollback + later) == 0

    # The sweep scores an item nobody announced (no ingest signal), once.
    settings.AL_DEPLOY_SWEEP_AFTER_SECONDS = 0
    missed = ContentItem.objects.create(source="chat", external_id="missed", text=texts[80])
    assert deployed_items_sweep() == 1 and deployed_items_sweep() == 0
    assert len(_decisions("v1", [missed.pk])) == 1
