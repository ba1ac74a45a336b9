"""The model loop closed, in Chromium: a round's champion goes to shadow, live, is measured online, rolls back.

Everything is real: the live server, a Celery worker on the Redis broker that runs the round (train,
evaluate, promote, score, select) and scores newly ingested content with the deployed versions,
PostgreSQL, and content ingested over the HTTP API by an upstream service. In order:
1. a round promotes `al-abuse@v1`, which starts in shadow: its decisions on new content are
   recorded and route nothing;
2. the lead approves thresholds for `al-abuse` and switches v1 live on the models page; new
   content gets `al-abuse@v1` decisions routed under those thresholds, and the automatic ones are
   sampled into the audit queue at rate 0.5;
3. a reviewer labels the audit sample; the policy's online page and `/metrics` show the precision
   of v1's automatic actions and its clear misses with intervals, equal to a hand computation;
   an overturned appeal of an automatic action shows on v1's row;
4. a second version goes to shadow from the models page, is compared with v1 on the same items,
   is switched live, and one click rolls back to v1;
5. v1's artifact downloaded over REST reproduces, in a separate Python process, the scores v1's
   decisions carry on the server, exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from playwright.sync_api import Page, expect

from activelearning.models import ModelDeployment, ModelVersion, PromotionDecision, ThresholdProposal, TrainingRun
from labeling.services.annotations import annotation_submit
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ModelDecision, Queue, ReviewTask, RoutingRule
from reviewapp.services.claims import task_claim_next
from reviewapp.services.tokens import token_create
from tests.activelearning.test_django_helpers import FAST_ROUND, READERS, al_policy, load_items, model_files, records  # noqa: F401
from tests.browser.conftest import PASSWORD
from tests.factories import PolicyFactory, QueueFactory, RoutingRuleFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.usefixtures("model_files")]

GOLD, POOL = 800, 40
ROOT = Path(__file__).resolve().parents[2]


def _lead() -> User:
    lead = User.objects.create_user(username="loop-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return lead


def _bearer(scopes: list[str]) -> Client:
    _, secret = token_create(name=f"upstream-{'-'.join(scopes)}", scopes=scopes, actor=SYSTEM)
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def _ingest(upstream: Client, rows: list[tuple[str, str]]) -> list[int]:
    """Items of another policy from an upstream model: none carries a decision of `abuse`."""
    decisions = [
        {
            "source": "chat",
            "external_id": external_id,
            "text": text,
            "policy": "other",
            "model_name": "upstream",
            "model_version": "3",
            "score": 0.5,
        }
        for external_id, text in rows
    ]
    response = upstream.post("/api/v1/decisions", {"decisions": decisions}, content_type="application/json")
    assert response.status_code == 200, response.content
    return [r["item_id"] for r in response.json()["results"]]


def _decided(version: str, item_ids: list[int]) -> list[ModelDecision] | None:
    found = list(ModelDecision.objects.filter(model_name="al-abuse", model_version=version, item_id__in=item_ids))
    return found if len(found) == len(item_ids) else None


def _switch(page: Page, button: str) -> None:
    """Tick the confirmation of the form holding `button`, press it, and land back on the page."""
    form = page.locator("form", has=page.get_by_role("button", name=button))
    form.get_by_role("checkbox").check()
    form.get_by_role("button", name=button).click()
    expect(page.locator("#deployment")).to_be_visible()


def test_a_champion_goes_to_shadow_then_live_is_measured_online_and_rolls_back(
    transactional_db, celery_worker_process, page: Page, watch, log_in, screenshot, settings
) -> None:
    settings.UNDO_WINDOW_SECONDS = 0  # one audit answer makes gold at once
    policy, _ = al_policy("abuse")
    audit_queue = QueueFactory(slug="abuse-audit")
    RoutingRule.objects.filter(policy=policy).update(
        audit_queue=audit_queue, audit_rate_action=0.5, audit_rate_clear=0.5
    )
    load_items(policy, "convabuse", items=GOLD + POOL, gold=GOLD)
    other = PolicyFactory(key="other")
    RoutingRuleFactory(policy=other, queue=QueueFactory(slug="other-review"))
    QueueFactory(slug="appeals", kind="appeals")
    harmful = READERS["convabuse"][1]
    fresh = [r for r in records("convabuse", 1400)[GOLD + POOL :] if r.text.strip()]
    truth = {f"c-{i}": r.label == harmful for i, r in enumerate(fresh)}
    texts = {f"c-{i}": r.text for i, r in enumerate(fresh)}
    upstream = _bearer(["decisions:write"])
    lead = _lead()
    reviewer = User.objects.create_user(username="loop-reviewer", password=PASSWORD)

    # 1. A round (the worker's whole pipeline) promotes v1, which starts in shadow.
    api = Client()
    api.force_login(lead)
    started = api.post(
        "/api/v1/rounds", {"policy": "abuse", **FAST_ROUND, "budget": 5}, content_type="application/json"
    )
    assert started.status_code == 202, started.content
    run = TrainingRun.objects.get(pk=started.json()["id"])
    wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, status="succeeded").exists(), timeout=300)
    promotion = PromotionDecision.objects.get(challenger__training_run=run)
    assert promotion.outcome == "promoted", promotion.reasons
    v1 = ModelVersion.objects.get(training_run=run)
    assert ModelDeployment.objects.get(policy=policy).shadow_id == v1.pk

    shadowed = _ingest(upstream, [(k, texts[k]) for k in list(texts)[:6]])
    assert {d.routing_outcome for d in wait_for(lambda: _decided("v1", shadowed), timeout=90)} == {"shadow"}
    assert not ReviewTask.objects.filter(policy=policy, item_id__in=shadowed).exists()

    log_in(lead)
    page.goto("/models/?policy=abuse")
    deployment = page.locator("#deployment")
    live_line, shadow_line = deployment.locator("dd").nth(0), deployment.locator("dd").nth(1)
    expect(shadow_line).to_contain_text("al-abuse@v1 since")
    expect(live_line).to_contain_text("none: no model of this policy routes content")
    screenshot("v1-in-shadow")

    # 2. Thresholds for al-abuse from v1's shadow scores (30th/70th percentile), approved on the page.
    scores = np.array([d.score for d in _decided("v1", shadowed)])
    auto_clear, auto_action = (round(float(q), 6) for q in np.quantile(scores, [0.3, 0.7]))
    # The round proposed thresholds on held-out gold; the test moves them to these quantiles so all
    # three routes occur on the few items it sends (a lead approves whatever is proposed).
    proposal = ThresholdProposal.objects.get(model_version=v1, status="pending")
    ThresholdProposal.objects.filter(pk=proposal.pk).update(auto_action=auto_action, auto_clear=auto_clear)
    page.goto("/models/?policy=abuse")
    page.locator(f'form[action$="/proposals/{proposal.pk}/approve"] button').click()
    expect(page.locator("body")).to_contain_text("Routing thresholds updated.")
    assert RoutingRule.objects.get(policy=policy, model_name="al-abuse").auto_action == auto_action

    _switch(page, "Switch v1 live")
    expect(live_line).to_contain_text("al-abuse@v1 since")
    assert AuditEvent.objects.filter(action="model.deployed_live", actor_label="loop-lead").count() == 1
    screenshot("v1-live")

    live_keys = list(texts)[6:46]
    live_items = _ingest(upstream, [(k, texts[k]) for k in live_keys])
    decided = {d.item_id: d for d in wait_for(lambda: _decided("v1", live_items), timeout=120)}
    for decision in decided.values():
        expected = (
            "auto_action"
            if decision.score >= auto_action
            else "auto_clear"
            if decision.score <= auto_clear
            else "review"
        )
        assert decision.routing_outcome == expected and decision.routing_rule.model_name == "al-abuse"
        assert not (decision.audit_sampled and expected == "review")
    outcomes = {d.routing_outcome for d in decided.values()}
    assert {"auto_action", "auto_clear", "review"} <= outcomes

    # 3. A reviewer labels the audit sample with the dataset's crowd majority; the lead reads the result.
    key_of = dict(zip(live_items, live_keys, strict=True))
    while (claim := task_claim_next(reviewer=reviewer, queue=audit_queue)) is not None:
        violating = truth[key_of[claim.task.item_id]]
        labels = ["violating"] if violating else ["not_violating"]
        annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels)
    enforced = [d for d in decided.values() if d.routing_outcome == "auto_action" and d.audit_sampled]
    cleared = [d for d in decided.values() if d.routing_outcome == "auto_clear" and d.audit_sampled]
    precision = sum(truth[key_of[d.item_id]] for d in enforced) / len(enforced)  # equal weights: Hájek = share
    misses = sum(truth[key_of[d.item_id]] for d in cleared)

    # An upstream user appeals a removal nobody audited, and the appeal overturns it.
    appealed = next(d for d in decided.values() if d.routing_outcome == "auto_action" and not d.audit_sampled)
    appeals = _bearer(["appeals:write"])
    body = {"source": "chat", "external_id": key_of[appealed.item_id], "policy": "abuse", "appeal_id": "ap-1"}
    assert appeals.post("/api/v1/appeals", body, content_type="application/json").status_code == 201
    appeals_reviewer = User.objects.create_user(username="appeals-reviewer", password=PASSWORD)
    claim = task_claim_next(reviewer=appeals_reviewer, queue=Queue.objects.get(slug="appeals"))
    annotation_submit(
        task_id=claim.task.pk, reviewer=appeals_reviewer, submission_id=uuid.uuid4(), labels=["not_violating"]
    )

    page.goto("/models/abuse/online")
    v1_section = page.locator("section", has=page.get_by_role("heading", name=re.compile("al-abuse.*v1")))
    expect(v1_section.locator("td.precision")).to_contain_text(f"{precision:.3f}")
    expect(v1_section.locator("td.precision")).to_contain_text(f"audit-sample gold, n={len(enforced)}")
    expect(v1_section.locator("td.miss")).to_contain_text(f"{misses / len(cleared):.3f}")
    expect(v1_section.locator("td.overturn")).to_contain_text("1 of 1")
    expect(page.locator("#measured-on")).to_contain_text("audit")
    screenshot("online-figures")
    scrape = _bearer(["metrics:read"]).get("/metrics").content.decode()
    assert _gauge(scrape, "precision") == pytest.approx(precision)
    assert _gauge(scrape, "clear_miss_rate") == pytest.approx(misses / len(cleared))
    assert _gauge(scrape, "precision_lower") <= precision <= _gauge(scrape, "precision_upper")

    # 4. v2 (a later champion) to shadow from the page, compared with v1, switched live, rolled back.
    v2 = _second_version(v1)
    page.goto("/models/?policy=abuse")
    _switch(page, "Start shadow")
    expect(shadow_line).to_contain_text("al-abuse@v2 since")
    both = _ingest(upstream, [(k, texts[k]) for k in list(texts)[46:52]])
    wait_for(lambda: _decided("v2", both) and _decided("v1", both), timeout=120)
    page.goto("/models/?policy=abuse")
    expect(page.locator("#shadow-comparison")).to_contain_text("6 of 6")  # same weights: same labels
    screenshot("v2-shadow-compared")
    _switch(page, "Switch v2 live")
    expect(live_line).to_contain_text("al-abuse@v2 since")
    _switch(page, "Roll back to v1")
    expect(live_line).to_contain_text("al-abuse@v1 since")
    rolled = AuditEvent.objects.get(action="model.rolled_back")
    assert (rolled.before["live"], rolled.after["live"], rolled.actor_label) == (v2.pk, v1.pk, "loop-lead")
    after = _ingest(upstream, [(k, texts[k]) for k in list(texts)[52:56]])
    wait_for(lambda: _decided("v1", after), timeout=120)
    assert not _decided("v2", after) and not ModelDecision.objects.filter(model_version="v2", item_id__in=after)
    screenshot("rolled-back")

    # 5. v1's artifact over REST, loaded in another process, gives the server's scores bit for bit.
    in_order = sorted(live_items)
    _artifact_reproduces(v1, [decided[i] for i in in_order], texts=[texts[key_of[i]] for i in in_order])
    assert not watch.csp_violations and not watch.blocked_requests and not watch.dialogs


def _gauge(scrape: str, name: str) -> float:
    """v1's value of `reviewapp_online_<name>` in a Prometheus scrape."""
    labels = 'model_name="al-abuse",model_version="v1",policy="abuse"'
    found = re.search(rf"^reviewapp_online_{name}\{{{labels}\}} (\S+)$", scrape, re.M)
    assert found, f"no reviewapp_online_{name} for al-abuse v1"
    return float(found.group(1))


def _second_version(v1: ModelVersion) -> ModelVersion:
    """A later champion: same weights, registered as v2 (what a second promotion leaves behind)."""
    run = TrainingRun.objects.create(policy=v1.policy, status="succeeded", stage="done", params={})
    fields = {f.name: getattr(v1, f.name) for f in ModelVersion._meta.concrete_fields if not f.primary_key}
    ModelVersion.objects.filter(pk=v1.pk).update(status="retired")
    return ModelVersion.objects.create(**{**fields, "training_run": run, "number": 2, "status": "champion"})


BUNDLE_SCRIPT = """
import json, sys
from activelearning.bundle import load_bundle
path, sha256, texts = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
model = load_bundle(path, expected_sha256=sha256)
positive = model.head_labels.index(model.config["model"]["positive_label"])
print(json.dumps([float(row[positive]).hex() for row in model.predict(texts)]))
"""


def _artifact_reproduces(version: ModelVersion, decisions: list[ModelDecision], *, texts: list[str]) -> None:
    """The bundle scores the texts as one batch in item order, as the worker scored them."""
    download = _bearer(["models:read"]).get(f"/api/v1/models/{version.pk}/artifact")
    assert download.status_code == 200, download.content[:300]
    with tempfile.TemporaryDirectory() as folder:
        bundle, inputs = Path(folder) / "bundle.zip", Path(folder) / "texts.json"
        bundle.write_bytes(b"".join(download.streaming_content) if download.streaming else download.content)
        inputs.write_text(json.dumps(texts))
        result = subprocess.run(
            [sys.executable, "-c", BUNDLE_SCRIPT, str(bundle), download["X-Reviewapp-Artifact-Sha256"], str(inputs)],
            cwd=folder,  # nothing of the server's working directory or settings
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    offline = [float.fromhex(h) for h in json.loads(result.stdout)]
    assert offline == [d.score for d in decisions]  # bit for bit
