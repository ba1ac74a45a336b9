"""The models page, the round page and the REST endpoints, for leads and tokens."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from activelearning.models import Encoder, ModelVersion, ProposalStatus, RunStatus, TrainingRun
from activelearning.services.evaluation import model_version_evaluate
from activelearning.services.promotion import model_version_promote
from activelearning.services.rounds import review_queue_for, training_run_finish, training_run_start
from activelearning.services.thresholds import thresholds_propose
from activelearning.services.training import training_run_execute
from labeling.models import GoldLabel
from reviewapp.audit import SYSTEM
from reviewapp.content_keys import CONTENT_KEY_VERSION
from reviewapp.models import RoutingRule
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, load_items, model_files  # noqa: F401 (fixture)
from tests.factories import ContentItemFactory, PolicyFactory, QueueFactory, ReviewTaskFactory, UserFactory
from tests.visible_text import visible_text

pytestmark = pytest.mark.usefixtures("model_files")


@pytest.fixture
def lead(db):  # type: ignore[no-untyped-def]
    user = UserFactory(username="lead")
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@pytest.fixture
def lead_client(lead) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(lead)
    return client


@pytest.fixture
def champion(db, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """A trained, evaluated and promoted model with a pending threshold proposal."""
    policy, _ = al_policy("abuse")
    load_items(policy, "convabuse", items=900, gold=800)
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(policy=policy, actor=SYSTEM, params={**FAST_ROUND, "pipeline": "train"})
    with django_capture_on_commit_callbacks(execute=True):
        version = training_run_execute(run_id=run.pk)
    training_run_finish(run_id=run.pk)
    model_version_evaluate(version_id=version.pk)
    model_version_promote(version_id=version.pk)
    thresholds_propose(version_id=version.pk, target_precision=0.8)
    return version


@pytest.mark.slow
def test_models_page_shows_metrics_charts_slices_and_the_promotion_reason(lead_client, champion) -> None:
    response = lead_client.get(f"/models/?policy={champion.policy.key}")

    html = response.content.decode()
    assert response.status_code == 200
    assert "al-abuse@v1" in html and "<strong>Champion</strong>" in html
    assert "No champion yet: macro-F1" in html  # the decision's reason, in words
    assert html.count("<svg") >= 3  # precision–recall, calibration, training loss
    assert "Slices of held-out gold" in html and "Approve" in html
    assert "<script" not in html.split("</head>")[1]  # charts are plain SVG


def test_models_page_shows_each_versions_split_definition_and_marks_the_legacy_rule(lead_client, champion) -> None:
    html = lead_client.get(f"/models/?policy={champion.policy.key}").content.decode()
    champion.refresh_from_db()
    assert "<code>content-group-sha256</code>, salt <code>reviewapp-al-split-v1</code>" in html
    assert f"content key <code>{CONTENT_KEY_VERSION}</code>, dev 0.15 · test 0.2 of gold" in html
    assert f"Held-out test items: {champion.metrics['n']}" in html and "Legacy split" not in html
    assert f'<a href="/api/v1/models/{champion.pk}/artifact" download>Download bundle</a>' in html

    ModelVersion.objects.filter(pk=champion.pk).update(split_rule="item-id-sha256", split_content_key_version="")
    html = lead_client.get(f"/models/?policy={champion.policy.key}").content.decode()
    assert "<code>item-id-sha256</code>" in html and "Legacy split by item id" in html
    assert "legacy split</span>" in html  # in the versions table too


def test_reviewers_cannot_see_the_models_page(db) -> None:
    client = Client()
    client.force_login(UserFactory(username="reviewer"))
    assert client.get("/models/").status_code == 403


def test_starting_a_round_queues_training_once(lead_client, django_capture_on_commit_callbacks, settings) -> None:
    settings.AL_MIN_GOLD = 20
    load_items(al_policy("abuse")[0], "convabuse", items=30, gold=20)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = lead_client.post("/models/rounds/start", {"policy": "abuse", "encoder": "hashed", "budget": "20"})
        second = lead_client.post("/models/rounds/start", {"policy": "abuse", "encoder": "hashed"})

    run = TrainingRun.objects.get()
    assert first["Location"] == second["Location"] == f"/models/rounds/{run.pk}/"
    assert len(callbacks) == 1  # one retrain enqueued, after commit
    assert run.params["budget"] == 20 and run.requested_by_label == "lead" and run.trigger == "manual"
    page = lead_client.get(f"/models/rounds/{run.pk}/", headers={"HX-Request": "true"})
    assert b'hx-trigger="every 2s"' in page.content and b"<html" not in page.content


def test_invalid_round_parameters_are_explained(lead_client, settings) -> None:
    settings.AL_MIN_GOLD = 20
    load_items(al_policy("abuse")[0], "convabuse", items=30, gold=20)
    response = lead_client.post("/models/rounds/start", {"policy": "abuse", "strategy": "psychic"}, follow=True)

    assert b"Round not started: strategy: choose one of random" in response.content
    assert not TrainingRun.objects.exists()


def test_cancelling_a_round_frees_the_policy(lead_client, django_capture_on_commit_callbacks) -> None:
    policy, _ = al_policy("abuse")
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(policy=policy, actor=SYSTEM, params={"encoder": "hashed"})

    lead_client.post(f"/models/rounds/{run.pk}/cancel")

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error == "cancelled by lead"


@pytest.mark.slow
def test_a_lead_approves_thresholds_from_the_models_page(lead_client, champion) -> None:
    proposal = champion.threshold_proposals.get()

    lead_client.post(f"/models/proposals/{proposal.pk}/approve", {"note": "ok"})

    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED
    assert RoutingRule.objects.get(model_name="al-abuse").auto_action == proposal.auto_action


@pytest.mark.slow
def test_rest_round_start_list_and_progress_with_a_models_token(make_token, champion) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:write'])}")

    listed = api.get("/api/v1/models", {"policy": "abuse"})
    started = api.post("/api/v1/rounds", {"policy": "abuse", "encoder": "hashed", "budget": 5}, format="json")
    again = api.post("/api/v1/rounds", {"policy": "abuse"}, format="json")
    progress = api.get(f"/api/v1/rounds/{started.json()['id']}")

    assert listed.status_code == 200 and listed.json()[0]["metrics"]["macro_f1"] > 0
    assert listed.json()[0]["promotion"]["outcome"] == "promoted"
    assert started.status_code == 202 and started.json()["status"] == "queued"
    assert again.status_code == 409 and again.json()["id"] == started.json()["id"]
    assert progress.json()["params"]["budget"] == 5 and progress.json()["trigger"] == "api"


@pytest.mark.slow
def test_only_a_lead_in_person_approves_thresholds_over_rest(make_token, champion, lead) -> None:
    proposal = champion.threshold_proposals.get()
    service, personal = APIClient(), APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:write'])}")
    personal.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:write'], user=lead)}")

    refused = service.post(f"/api/v1/thresholds/{proposal.pk}/approve", {}, format="json")
    approved = personal.post(f"/api/v1/thresholds/{proposal.pk}/approve", {"note": "ok"}, format="json")
    twice = personal.post(f"/api/v1/thresholds/{proposal.pk}/reject", {}, format="json")

    assert refused.status_code == 403
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert twice.status_code == 409


def test_models_page_says_how_much_gold_a_round_needs(lead_client, settings) -> None:
    settings.AL_MIN_GOLD = 50
    policy, _ = al_policy("sparse")
    load_items(policy, "convabuse", items=30, gold=12)

    html = lead_client.get(f"/models/?policy={policy.key}").content.decode()
    assert "has gold labels on 12 items; a round needs at least 50" in html

    settings.AL_MIN_GOLD = 12
    assert "a round needs at least" not in lead_client.get(f"/models/?policy={policy.key}").content.decode()


def test_the_default_round_form_uses_the_queue_the_policys_tasks_go_to(
    lead_client, settings, django_capture_on_commit_callbacks
) -> None:
    """A policy imported from a dataset has no '*' routing rule: its tasks' review queue is the default."""
    settings.AL_MIN_GOLD = 20
    policy = PolicyFactory(key="imported")
    other, imported = QueueFactory(slug="other-review"), QueueFactory(slug="imported-review")
    _, pool = load_items(policy, "convabuse", items=30, gold=20)
    for item_id in pool[:4]:
        ReviewTaskFactory(item_id=item_id, policy=policy, queue=imported)
    ReviewTaskFactory(item_id=pool[5], policy=PolicyFactory(key="elsewhere"), queue=other)
    ReviewTaskFactory(item_id=pool[6], policy=policy, queue=other)
    form = {"policy": policy.key, "encoder": "hashed", "strategy": "entropy", "budget": "50", "queue_id": ""}

    with django_capture_on_commit_callbacks(execute=False):
        response = lead_client.post("/models/rounds/start", form)

    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/models/rounds/{run.pk}/"
    assert "queue_id" not in run.params and review_queue_for(policy) == imported


def test_a_round_that_cannot_start_says_why_as_an_error(lead_client, settings) -> None:
    settings.AL_MIN_GOLD = 20
    policy = PolicyFactory(key="unrouted", name="Unrouted")
    load_items(policy, "convabuse", items=30, gold=20)

    page = lead_client.post("/models/rounds/start", {"policy": policy.key, "encoder": "hashed"}, follow=True)

    html = page.content.decode()
    assert not TrainingRun.objects.exists()
    refusal = '<li class="error"><span role="alert">Round not started: queue_id: Unrouted has no default review queue'
    assert refusal in html
    assert 'class="success"' not in html and "choose a queue or add a &#x27;*&#x27; routing rule" in html


def test_too_little_gold_disables_start_and_the_server_refuses_it_too(lead_client, settings) -> None:
    settings.AL_MIN_GOLD = 50
    policy, _ = al_policy("sparse")
    load_items(policy, "convabuse", items=30, gold=12)

    page = lead_client.get(f"/models/?policy={policy.key}").content.decode()
    assert 'class="primary" disabled aria-describedby="round-blocked">Start round</button>' in page
    assert 'id="round-blocked">Sparse has gold labels on 12 items; a round needs at least 50.' in page

    refused = lead_client.post("/models/rounds/start", {"policy": policy.key, "encoder": "hashed"}, follow=True)
    assert not TrainingRun.objects.exists()
    assert b'<li class="error"><span role="alert">Round not started: ' in refused.content
    assert b"has gold labels on 12 items; a round needs at least 50." in refused.content

    settings.AL_MIN_GOLD = 12
    enough = lead_client.get(f"/models/?policy={policy.key}").content.decode()
    assert 'class="primary">Start round</button>' in enough and "round-blocked" not in enough


def test_gold_of_a_single_class_disables_start(lead_client, settings) -> None:
    settings.AL_MIN_GOLD = 10
    policy, _ = al_policy("oneclass")
    GoldLabel.objects.bulk_create(
        GoldLabel(
            item=ContentItemFactory(),
            policy=policy,
            policy_version=policy.current_version(),
            source="adjudication",
            labels=["violating"],
        )
        for _ in range(12)
    )

    page = lead_client.get(f"/models/?policy={policy.key}").content.decode()
    assert "disabled" in page and "says the same; a round needs gold of at least two classes" in page
    refused = lead_client.post("/models/rounds/start", {"policy": policy.key}, follow=True)
    assert not TrainingRun.objects.exists() and b"a round needs gold of at least two classes" in refused.content


def test_models_and_round_pages_name_labels_strategies_and_statuses_never_by_key(lead_client, champion) -> None:
    page = visible_text(lead_client.get(f"/models/?policy={champion.policy.key}").content.decode().split("<main")[1])
    assert "Least confidence" in page and "BALD (Monte Carlo dropout)" in page and "Champion" in page
    assert "positive label Violating" in page and "Not violating" in page  # the per-class table
    for key in ("least_confidence", "not_violating", "low_confidence", "succeeded"):
        assert key not in page, key
    run = visible_text(
        lead_client.get(f"/models/rounds/{champion.training_run_id}/").content.decode().split("<main")[1]
    )
    encoder = champion.training_run.params["encoder"]
    assert f"encoder {Encoder(encoder).label}" in run and "Succeeded" in run
    assert "not_violating" not in run and f"encoder {encoder}," not in run
