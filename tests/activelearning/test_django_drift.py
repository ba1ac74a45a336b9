"""Drift of live decisions from the champion's training items: ingested over HTTP, read on the page, REST and /metrics.

The champion is a registry row over real gold (ConvAbuse texts, source "convabuse", English): its
training items are the train split of that gold under its split definition, and its pool scores
are the scores it gave the unlabelled items. Decisions then arrive through `POST /api/v1/decisions`
as upstream sends them: first like the training data, then from another source, in another
language, with longer texts and higher scores.
"""

from __future__ import annotations

import random
import re

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from activelearning.metrics import DriftCollector
from activelearning.models import ModelStatus, ModelVersion, PoolScore, RunTrigger, TrainingRun
from activelearning.services.datasets import gold_watermark
from activelearning.services.drift import LATEST_CACHE_KEY, drift_all_policies
from activelearning.services.splits import SplitDefinition
from labeling.models import GoldLabel
from reviewapp.models import AuditEvent
from tests.activelearning.test_django_helpers import al_policy, load_items, records
from tests.factories import UserFactory

LIVE = 250


@pytest.fixture
def champion(db):  # type: ignore[no-untyped-def]
    policy, _ = al_policy("abuse")
    _, pool = load_items(policy, "convabuse", items=700, gold=400)
    run = TrainingRun.objects.create(policy=policy, status="succeeded", stage="done", params={"encoder": "hashed"})
    version = ModelVersion.objects.create(
        policy=policy,
        training_run=run,
        number=1,
        status=ModelStatus.CHAMPION,
        artifact_path="x.pt",
        artifact_sha256="a" * 64,
        artifact_bytes=1,
        encoder="hashed",
        encoder_id="hashed",
        task="binary",
        head_labels=["violating"],
        classes=["not_violating", "violating"],
        positive_label="violating",
        gold_watermark=gold_watermark(policy.pk),
        training_set_sha256="b" * 64,
        **SplitDefinition.current().model_fields(),
        n_train=300,
        n_dev=50,
    )
    rng = random.Random(3)
    PoolScore.objects.bulk_create(
        PoolScore(model_version=version, item_id=item, probs=[s], score=s, uncertainty=0.5)
        for item, s in ((item, rng.betavariate(2, 6)) for item in pool)
    )
    return version


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="drift-lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)
    return client


def _ingest(client: APIClient, rows: list[dict]) -> None:
    response = client.post("/api/v1/decisions", {"decisions": rows}, format="json")
    assert response.status_code in (200, 201, 207), response.content[:500]
    assert response.json()["accepted"] == len(rows), response.json()["errors"][:3]


def _like_training(n: int) -> list[dict]:
    """Decisions on unseen ConvAbuse texts, English, scored like the pool."""
    rng = random.Random(5)
    texts = [r.text for r in records("convabuse", 1200)[700:]]
    return [
        {
            "source": "convabuse",
            "external_id": f"live-{i}",
            "text": texts[i % len(texts)],
            "metadata": {"language": "en"},
            "policy": "abuse",
            "model_name": "al-abuse",
            "model_version": "v1",
            "score": round(rng.betavariate(2, 6), 4),
        }
        for i in range(n)
    ]


def _drifted(n: int) -> list[dict]:
    """Another upstream system, French, long texts, scores pushed up."""
    rng = random.Random(6)
    return [
        {
            "source": "voice-transcripts",
            "external_id": f"drift-{i}",
            "text": "bonjour " * rng.randint(60, 120) + f"<b>message {i}</b>",
            "metadata": {"language": "fr"},
            "policy": "abuse",
            "model_name": "al-abuse",
            "model_version": "v1",
            "score": round(rng.betavariate(6, 2), 4),
        }
        for i in range(n)
    ]


def _features(body: dict) -> dict[str, dict]:
    return {f["feature"]: f for f in body["features"]}


def test_decisions_like_the_training_data_raise_no_alert(champion, ingest_client, make_token) -> None:
    _ingest(ingest_client, _like_training(LIVE))
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:read'])}")

    body = reader.get("/api/v1/drift", {"policy": "abuse"}).json()

    assert body["champion"] == "al-abuse@v1" and body["live_source"] == "al-abuse"
    assert body["n_decisions"] == LIVE and body["alert"] is False
    features = _features(body)
    assert set(features) == {"score", "text_length", "language", "source"}
    assert features["language"]["psi"] == pytest.approx(0.0, abs=1e-9)  # all English on both sides
    assert features["source"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert features["score"]["psi"] < 0.1 and features["text_length"]["psi"] < 0.1
    assert features["score"]["n_reference"] == PoolScore.objects.filter(model_version=champion).count()
    n_train = features["language"]["n_reference"]
    assert 0 < n_train < GoldLabel.objects.count() and f"the {n_train} training items" in body["reference"]


def test_drifted_decisions_show_psi_and_an_alert_on_the_page_rest_and_metrics(
    champion, ingest_client, make_token, lead_client, django_capture_on_commit_callbacks
) -> None:
    _ingest(ingest_client, _like_training(50) + _drifted(LIVE))
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:read'])}")

    body = reader.get("/api/v1/drift", {"policy": "abuse"}).json()

    features = _features(body)
    assert body["alert"] is True and body["level"] == "alert"
    for name in ("score", "text_length", "language", "source"):
        assert features[name]["psi"] > 0.25 and features[name]["level"] == "alert", name
    # 150 of 200 live items are French, a category the reference never saw: it falls in "(other)".
    assert features["language"]["bins"][-1] == "(other)"
    assert features["language"]["live"][-1] == pytest.approx(LIVE / (LIVE + 50))

    page = lead_client.get("/models/?policy=abuse").content.decode()
    assert "Drift alert" in page and 'id="drift-features"' in page
    assert f"{features['language']['psi']:.3f}" in page
    assert "&lt;b&gt;message" not in page and "<b>message" not in page  # content is never shown here
    assert re.search(r'name="trigger" value="drift"', page)

    metrics = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}").get("/metrics").content.decode()
    psi_lines = [m for m in metrics.splitlines() if m.startswith("reviewapp_al_drift_psi{")]
    line = next(m for m in psi_lines if 'feature="language"' in m)
    assert 'policy="abuse"' in line and 'live_source="al-abuse"' in line
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(features["language"]["psi"], rel=1e-6)
    assert 'reviewapp_al_drift_alert{policy="abuse"} 1.0' in metrics

    # The alert proposes a round; it starts only when a lead submits it, and says why it ran.
    with django_capture_on_commit_callbacks(execute=False):
        response = lead_client.post("/models/rounds/start", {"policy": "abuse", "trigger": "drift"})
    round_ = TrainingRun.objects.exclude(pk=champion.training_run_id).get()
    assert response.status_code == 302 and round_.trigger == RunTrigger.DRIFT
    assert AuditEvent.objects.get(action="training_run.requested", object_id=str(round_.pk)).after["trigger"] == "drift"


def test_before_the_champion_runs_live_every_models_decisions_are_measured(champion, ingest_client) -> None:
    rows = [{**row, "model_name": "upstream-bert"} for row in _drifted(LIVE)]
    _ingest(ingest_client, rows)
    lead = UserFactory(username="lead-2")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = APIClient()
    client.force_login(lead)

    body = client.get("/api/v1/drift", {"policy": "abuse"}).json()

    assert body["live_source"] == "all models" and body["alert"] is True
    # No decision was stored on a training item, so there is no reference score distribution.
    assert "score" not in _features(body) and body["score_reference"].startswith("not measured")


def test_drift_refuses_bad_requests_and_the_wrong_callers(champion, make_token, lead_client) -> None:
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:read'])}")
    missing = reader.get("/api/v1/drift")
    assert missing.status_code == 400 and "policy" in missing.json()["detail"]
    assert reader.get("/api/v1/drift", {"policy": "nope"}).status_code == 404

    upstream = APIClient()
    upstream.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
    assert upstream.get("/api/v1/drift", {"policy": "abuse"}).status_code == 403
    reviewer = APIClient()
    reviewer.force_login(UserFactory(username="just-a-reviewer"))
    assert reviewer.get("/api/v1/drift", {"policy": "abuse"}).status_code == 403

    bogus = lead_client.post("/models/rounds/start", {"policy": "abuse", "trigger": "new_gold"})
    assert bogus.status_code == 400 and b"trigger must be one of" in bogus.content
    assert not TrainingRun.objects.exclude(pk=champion.training_run_id).exists()


def test_without_a_champion_drift_says_why_it_is_not_measured(db, lead_client) -> None:
    al_policy("abuse")

    page = lead_client.get("/models/?policy=abuse").content.decode()

    assert "Not measured: no champion" in page and "Drift alert" not in page


def test_metrics_report_what_the_beat_measured_without_reading_the_database(
    champion, ingest_client, make_token, django_assert_num_queries
) -> None:
    _ingest(ingest_client, _drifted(LIVE))
    cache.delete(LATEST_CACHE_KEY)
    scraper = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}")
    assert "reviewapp_al_drift_psi{" not in scraper.get("/metrics").content.decode()

    (measured,) = drift_all_policies()  # what the `measure_drift` beat runs

    metrics = scraper.get("/metrics").content.decode()
    language = next(f for f in measured.features if f.feature == "language")
    assert (
        f'reviewapp_al_drift_psi{{feature="language",live_source="al-abuse",policy="abuse"}} {language.psi}' in metrics
    )
    assert 'reviewapp_al_drift_alert{policy="abuse"} 1.0' in metrics
    with django_assert_num_queries(0):
        families = {family.name for family in DriftCollector().collect()}
    assert families == {
        "reviewapp_al_drift_psi",
        "reviewapp_al_drift_alert",
        "reviewapp_al_drift_measured_timestamp_seconds",
    }
