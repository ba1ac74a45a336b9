"""Held-out figures per stratum and thresholds chosen on dev, through a trained model on real data.

ConvAbuse gold is given the routes and sampling propensities it would carry in production: most
items reached people through the review band (propensity 1) or the random audit sample (rates 0.2
and 0.5), the rest were selected by active learning, imported, or planted as honeypots.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient
from sklearn.metrics import f1_score

from activelearning.models import ModelVersion, ThresholdProposal
from activelearning.services.datasets import DEV, TEST
from activelearning.services.evaluation import eval_probs, held_out, model_version_evaluate
from activelearning.services.numeric import threshold_for_precision
from activelearning.services.promotion import model_version_promote
from activelearning.services.registry import head_probs
from activelearning.services.rounds import training_run_finish, training_run_start
from activelearning.services.splits import SplitDefinition, assign_splits
from activelearning.services.thresholds import thresholds_propose
from activelearning.services.training import training_run_execute
from labeling.models import GoldLabel
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, model_files, records  # noqa: F401 (fixture)
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("model_files")]
# (route, sampling propensity) by gold row, in a cycle: two thirds traffic, then hard and imported items.
ROUTES = [
    ("low_confidence", 1.0),
    ("audit_sample", 0.2),
    ("audit_sample", 0.5),
    ("low_confidence", 1.0),
    ("active_learning", 1.0),
    ("backfill", 1.0),
]
HOSTILE_ROUTE = '<img src=x onerror="alert(1)">'


@pytest.fixture
def champion(db, django_capture_on_commit_callbacks) -> ModelVersion:  # type: ignore[no-untyped-def]
    """A trained, evaluated, promoted model on gold with known routes and propensities."""
    policy, _ = al_policy("abuse")
    rows = records("convabuse", 720)
    # The one gold with an unknown route must be held out: the first row the content split puts in test.
    split = assign_splits(
        SplitDefinition.current(),
        texts=[r.text for r in rows],
        identities=[f"convabuse\x1f{r.external_id}" for r in rows],
        first_gold_ids=list(range(len(rows))),
    )
    hostile = next(i for i in range(len(rows)) if split.split[i] == TEST and not split.leaking[i])
    items = ContentItem.objects.bulk_create(
        ContentItem(source="convabuse", external_id=r.external_id, text=r.text, metadata={"language": "en"})
        for r in rows
    )
    GoldLabel.objects.bulk_create(
        GoldLabel(
            item=item,
            policy=policy,
            policy_version=policy.current_version(),
            source="adjudication",
            route=route_of(i, hostile)[0],
            sampling_propensity=route_of(i, hostile)[1],
            labels=["violating" if r.label == "abusive" else "not_violating"],
        )
        for i, (item, r) in enumerate(zip(items, rows, strict=True))
    )
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(policy=policy, actor=SYSTEM, params={**FAST_ROUND, "pipeline": "train"})
    with django_capture_on_commit_callbacks(execute=True):
        version = training_run_execute(run_id=run.pk)
    training_run_finish(run_id=run.pk)
    model_version_evaluate(version_id=version.pk)
    model_version_promote(version_id=version.pk)
    version.refresh_from_db()
    return version


def route_of(row: int, hostile: int) -> tuple[str, float]:
    if row == hostile:
        return HOSTILE_ROUTE, 1.0  # an unknown route: its own stratum, and an escaped slice value
    return ("honeypot", 1.0) if row % 12 == 5 else ROUTES[row % len(ROUTES)]


def gold_by_item(version: ModelVersion) -> dict[int, GoldLabel]:
    return {g.item_id: g for g in GoldLabel.objects.filter(policy_id=version.policy_id)}


def test_traffic_figures_are_weighted_by_inverse_propensity_and_kept_apart(champion) -> None:
    data = held_out(champion)
    gold = gold_by_item(champion)
    pred = (eval_probs(champion, data) >= 0.5).astype(int)
    truth = np.asarray([int(gold[i].labels == ["violating"]) for i in data.gold.item_ids])
    routes = [gold[i].route for i in data.gold.item_ids]
    traffic = np.asarray([r in ("low_confidence", "audit_sample") for r in routes])
    weights = np.asarray([1 / gold[i].sampling_propensity for i in data.gold.item_ids])[traffic]
    selected = np.asarray([r == "active_learning" for r in routes])

    strata = champion.metrics["strata"]

    expected = f1_score(truth[traffic], pred[traffic], sample_weight=weights, average="macro", zero_division=0)
    assert strata["traffic"]["macro_f1"] == pytest.approx(expected, abs=1e-9)
    assert strata["traffic"]["n"] == int(traffic.sum()) and strata["traffic"]["weighted"] is True
    assert strata["traffic"]["n_eff"] == pytest.approx(weights.sum() ** 2 / (weights**2).sum())
    assert strata["traffic"]["n_eff"] < strata["traffic"]["n"]  # unequal weights cost precision
    low, high = strata["traffic"]["intervals"]["macro_f1"]["low"], strata["traffic"]["intervals"]["macro_f1"]["high"]
    assert low <= strata["traffic"]["macro_f1"] <= high
    unweighted = f1_score(truth[selected], pred[selected], average="macro", zero_division=0)
    assert strata["selected"]["macro_f1"] == pytest.approx(unweighted, abs=1e-9)
    assert strata["selected"]["weighted"] is False
    assert strata["honeypot"]["n"] == sum(r == "honeypot" for r in routes)
    assert champion.metrics["decision_stratum"] == "traffic" and champion.metrics["stratum"] == "all"
    decision = champion.promotion
    assert decision.comparison["stratum"] == "traffic" and decision.comparison["n"] == int(traffic.sum())
    assert "on test · traffic (weighted, n=" in decision.reasons[0]


def test_thresholds_are_chosen_on_dev_and_measured_once_on_test(champion) -> None:
    # Test labels turned upside down: a threshold chosen on test would differ, and the honest
    # measurement on test must show the chosen threshold failing there.
    gold = gold_by_item(champion)
    test_items = held_out(champion).gold.item_ids
    for item_id in test_items:
        old = gold[item_id]
        GoldLabel.objects.create(
            item_id=item_id,
            policy_id=old.policy_id,
            policy_version_id=old.policy_version_id,
            version=2,
            supersedes=old,
            labels=["not_violating"] if old.labels == ["violating"] else ["violating"],
            source="adjudication",
            route=old.route,
            sampling_propensity=old.sampling_propensity,
        )

    proposal = thresholds_propose(version_id=champion.pk, target_precision=0.7, target_recall=0.9)

    dev_choice = choose_on(champion, DEV)
    assert dev_choice is not None and proposal.auto_action == round(dev_choice.threshold, 4)
    test_choice = choose_on(champion, TEST)
    assert test_choice is None or round(test_choice.threshold, 4) != proposal.auto_action
    chosen, measured = proposal.estimates["chosen_on"], proposal.estimates["measured_on"]
    assert (chosen["split"], chosen["stratum"], measured["split"], measured["stratum"]) == (
        "dev",
        "traffic",
        "test",
        "traffic",
    )
    assert chosen["action"]["precision"] >= 0.7 > measured["action"]["precision"]
    action = measured["action"]
    assert action["precision_low"] <= action["precision"] <= action["precision_high"]
    assert measured["n"] == sum(gold[i].route in ("low_confidence", "audit_sample") for i in test_items)


def choose_on(version: ModelVersion, split: int):  # type: ignore[no-untyped-def]
    """The auto-action threshold a proposal would choose on one split's traffic, computed here."""
    data = held_out(version, part=split)
    current = {g.item_id: g for g in GoldLabel.objects.filter(policy_id=version.policy_id).order_by("version")}
    rows = [i for i, item in enumerate(data.gold.item_ids) if current[item].route in ("low_confidence", "audit_sample")]
    rows_array = np.asarray(rows)
    scores = head_probs(version, data.restrict(rows_array).features)[:, 0]
    positive = np.asarray([current[data.gold.item_ids[i]].labels == ["violating"] for i in rows])
    weights = np.asarray([1 / current[data.gold.item_ids[i]].sampling_propensity for i in rows])
    return threshold_for_precision(scores, positive, 0.7, min_support=5, weights=weights)


def test_models_page_and_api_name_split_and_stratum_of_every_figure(champion) -> None:
    thresholds_propose(version_id=champion.pk, target_precision=0.7)
    ThresholdProposal.objects.create(  # made before thresholds were chosen on dev: test figures only
        policy=champion.policy,
        model_version=champion,
        model_name=champion.model_name,
        target_precision=0.9,
        target_recall=0.9,
        auto_action=0.8,
        estimates={"n": 57, "positives": 12, "action": {"precision": 0.93, "share": 0.1}, "clear": None},
        status="superseded",
    )
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)

    html = client.get(f"/models/?policy={champion.policy.key}").content.decode()

    traffic = champion.metrics["strata"]["traffic"]
    assert f"test · traffic (weighted, n={traffic['n']}, n_eff={traffic['n_eff']:.1f})" in html
    assert "test · selected (unweighted, n=" in html and "test · imported (unweighted, n=" in html
    assert "test · honeypot (unweighted, n=" in html and "test · unknown (unweighted, n=1)" in html
    assert "<strong>promotion and thresholds</strong>" in html
    assert f"test · all strata pooled (unweighted, n={champion.metrics['n']})" in html
    assert "dev · traffic (weighted, n=" in html  # the pending proposal: chosen on dev ...
    assert html.count("test · traffic (weighted, n=") >= 3  # ... measured on test; and the decision
    assert '<span class="warn">chosen on test</span>' in html  # the old proposal, labelled as such
    assert HOSTILE_ROUTE not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html

    api = APIClient()
    api.force_authenticate(lead)
    proposals = api.get("/api/v1/thresholds", {"policy": champion.policy.key}).json()
    models = api.get("/api/v1/models", {"policy": champion.policy.key}).json()
    sources = {p["status"]: p["sources"] for p in proposals}
    assert sources["pending"]["chosen_on"].startswith("dev · traffic (weighted, n=")
    assert sources["pending"]["measured_on"].startswith("test · traffic (weighted, n=")
    assert sources["superseded"] == {
        "chosen_on": "test · all strata pooled (unweighted, n=57)",
        "measured_on": "test · all strata pooled (unweighted, n=57)",
        "chosen_on_test": True,
    }
    assert models[0]["measured_on"]["decision_stratum"] == "traffic"
    assert models[0]["measured_on"]["strata"]["traffic"].startswith("test · traffic (weighted, n=")
