"""Model bundles over REST, a bundle loaded in another process, and the predict endpoint.

A real model trained on ConvAbuse gold is downloaded with a token, loaded by `load_bundle` in a
separate Python that has no Django, and must give exactly (==) the predict endpoint's scores.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from activelearning.encoders import MiniLMEncoder, content_key
from activelearning.models import ItemEmbedding, ModelStatus, ModelVersion
from activelearning.services.evaluation import model_version_evaluate
from activelearning.services.features import text_embeddings
from activelearning.services.promotion import model_version_promote
from activelearning.services.registry import model_root
from activelearning.services.rounds import training_run_finish, training_run_start
from activelearning.services.training import training_run_execute
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem
from tests.activelearning.test_django_helpers import (  # noqa: F401 (fixture)
    FAST_ROUND,
    al_policy,
    load_items,
    model_files,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("model_files")
ROOT = Path(__file__).resolve().parents[2]
HOSTILE = [
    "<script>alert(1)</script> you are useless",
    "\u202eesrever ni txet \u202c and an idiot",  # right-to-left override
    "Z̸̢͓̈a̷̛̜l̴̰̾g̵̱͝o̶̼͝ says hi",
    "😡🤬 shut up 🤖🤖🤖",
    "日本語のテキスト、ばか",
    "x" * 20_000,  # the longest text accepted
    "'; DROP TABLE activelearning_modelversion; --",
    "\t\n  padded  \n",
]


@pytest.fixture
def champion(db, django_capture_on_commit_callbacks) -> ModelVersion:  # type: ignore[no-untyped-def]
    """A model trained on 800 ConvAbuse gold labels, evaluated and promoted (no Celery: called in order)."""
    policy, _ = al_policy("abuse")
    load_items(policy, "convabuse", items=900, gold=800)
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(policy=policy, actor=SYSTEM, params={**FAST_ROUND, "pipeline": "train"})
    with django_capture_on_commit_callbacks(execute=True):
        version = training_run_execute(run_id=run.pk)
    assert version is not None
    training_run_finish(run_id=run.pk)
    model_version_evaluate(version_id=version.pk)
    model_version_promote(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == ModelStatus.CHAMPION
    return version


def client(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def pool_texts(limit: int) -> list[str]:
    """Texts of items that have no gold label: the model never trained on them."""
    return list(ContentItem.objects.filter(gold_labels__isnull=True).order_by("pk").values_list("text", flat=True))[
        :limit
    ]


BUNDLE_SCRIPT = """
import json, sys
from activelearning.bundle import load_bundle
path, sha256, items = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
model = load_bundle(path, expected_sha256=sha256)
probs = model.predict_proba(items)
print(json.dumps({
    "probs": [[float(p).hex() for p in row] for row in probs],
    "answers": model.predict_items(items),
    "django_loaded": any(name.split(".")[0] == "django" for name in sys.modules),
}))
"""


@pytest.mark.slow
def test_a_bundle_loaded_in_another_process_scores_exactly_as_the_predict_endpoint(
    champion, make_token, tmp_path
) -> None:
    api = client(make_token(["models:read", "models:predict"]))
    items = [{"text": t, "id": f"pool-{i}"} for i, t in enumerate(pool_texts(60) + HOSTILE)]

    download = api.get(f"/api/v1/models/{champion.pk}/artifact")
    predicted = api.post("/api/v1/models/abuse/predict", {"items": items}, format="json")

    assert download.status_code == 200, download.content[:300]
    assert download["Content-Type"] == "application/zip"
    assert download["Content-Disposition"] == 'attachment; filename="al-abuse-v1.zip"'
    sha256 = download["X-Reviewapp-Artifact-Sha256"]
    assert download["ETag"] == f'"{sha256}"'
    bundle = tmp_path / "al-abuse-v1.zip"
    bundle.write_bytes(download.content)
    (tmp_path / "items.json").write_text(json.dumps(items))
    result = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", BUNDLE_SCRIPT, str(bundle), sha256, str(tmp_path / "items.json")],
        cwd=tmp_path,  # nothing of the server's working directory
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    offline = json.loads(result.stdout)

    assert predicted.status_code == 200, predicted.content[:500]
    body = predicted.json()
    assert body["model"] == {
        "id": champion.pk,
        "model": "al-abuse@v1",
        "number": 1,
        "status": "champion",
        "artifact_sha256": champion.artifact_sha256,
        "encoder_id": champion.encoder_id,
        "positive_label": "violating",
    }
    served = [[row["scores"][label] for label in champion.head_labels] for row in body["items"]]
    assert [[float.fromhex(p) for p in row] for row in offline["probs"]] == served  # bit for bit
    assert [{k: v for k, v in row.items() if k != "id"} for row in body["items"]] == offline["answers"]
    assert [row["id"] for row in body["items"]] == [item["id"] for item in items]
    assert not offline["django_loaded"]
    scores = np.asarray([row["score"] for row in body["items"]])
    assert 0 < scores.min() < 0.5 < scores.max() < 1  # a real model: it separates the items
    assert all(
        row["predicted_label"] == ("violating" if row["score"] >= 0.5 else "not_violating") for row in body["items"]
    )


@pytest.mark.slow
def test_the_bundle_is_deterministic_self_describing_and_never_a_tampered_file(champion, make_token) -> None:
    api = client(make_token(["models:read"]))

    first = api.get(f"/api/v1/models/{champion.pk}/artifact")
    second = api.get(f"/api/v1/models/{champion.pk}/artifact")

    assert first.content == second.content and first["ETag"] == second["ETag"]
    archive = zipfile.ZipFile(io.BytesIO(first.content))
    assert archive.namelist() == ["config.json", "model_card.json", "MODEL_CARD.md", "model.safetensors", "SHA256SUMS"]
    config, card = json.loads(archive.read("config.json")), json.loads(archive.read("model_card.json"))
    assert config["model"]["head_labels"] == ["violating"] and config["model"]["positive_label"] == "violating"
    assert config["model"]["classes"] == champion.classes
    assert config["encoder"] == champion.encoder_config
    assert config["thresholds"]["rule"] == "*" and config["thresholds"]["auto_action"] == 0.9  # al_policy's rule
    assert config["input_schema"]["accepts"] == ["text"] and config["input_schema"]["max_batch"] == 1000
    assert len(config["head"]["temperature"]) == 1
    assert card["training"]["training_set_sha256"] == champion.training_set_sha256
    assert (
        card["training"]["n_train"] == champion.n_train
        and card["training"]["gold_watermark"] == champion.gold_watermark
    )
    assert card["split"]["rule"] == champion.split_rule
    assert card["evaluation"]["measured_on"].startswith("test")
    assert card["evaluation"]["metrics"]["n"] == champion.metrics["n"]
    assert card["evaluation"]["metrics"]["intervals"]["macro_f1"]["low"] <= champion.metrics["macro_f1"]
    assert "imported" in card["evaluation"]["strata_measured_on"]  # ConvAbuse gold is a backfill
    assert any("traffic" in sentence for sentence in card["limitations"]) and card["intended_use"]
    assert "## Limitations" in archive.read("MODEL_CARD.md").decode()

    artifact = model_root() / champion.artifact_path
    original = artifact.read_bytes()
    artifact.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    tampered = api.get(f"/api/v1/models/{champion.pk}/artifact")
    artifact.unlink()
    missing = api.get(f"/api/v1/models/{champion.pk}/artifact")
    artifact.write_bytes(original)

    assert tampered.status_code == 409 and "does not match its registered sha256" in tampered.json()["detail"]
    assert missing.status_code == 409 and "is missing" in missing.json()["detail"]
    assert api.get(f"/api/v1/models/{champion.pk}/artifact").content == first.content


@pytest.mark.slow
def test_predict_scopes_roles_versions_and_bad_input(champion, make_token) -> None:
    lead, reviewer = UserFactory(username="lead"), UserFactory(username="reviewer")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    sessions = {}
    for user in (lead, reviewer):
        sessions[user.username] = APIClient()
        sessions[user.username].force_login(user)
    predictor, reader, writer = (client(make_token([s])) for s in ("models:predict", "models:read", "models:write"))
    one = {"items": [{"text": "you are an idiot"}]}

    def predict(api: APIClient, body: object, policy: str = "abuse"):  # type: ignore[no-untyped-def]
        return api.post(f"/api/v1/models/{policy}/predict", body, format="json")

    assert predict(predictor, one).status_code == 200
    assert predict(sessions["lead"], one).status_code == 200
    assert predict(sessions["reviewer"], one).status_code == 403
    assert sessions["reviewer"].get(f"/api/v1/models/{champion.pk}/artifact").status_code == 403
    assert sessions["lead"].get(f"/api/v1/models/{champion.pk}/artifact").status_code == 200
    refused = predict(reader, one)
    assert refused.status_code == 403 and "models:predict" in refused.json()["detail"]
    assert predict(writer, one).status_code == 403
    assert predictor.get(f"/api/v1/models/{champion.pk}/artifact").status_code == 403
    assert writer.get(f"/api/v1/models/{champion.pk}/artifact").status_code == 200

    named = predict(predictor, {**one, "version": 1})
    unknown = predict(predictor, {**one, "version": 7})
    no_policy = predict(predictor, one, policy="no-such-policy")
    assert named.json()["model"]["model"] == "al-abuse@v1"
    assert unknown.status_code == 404 and "no model version 7" in unknown.json()["detail"]
    assert no_policy.status_code == 404 and "no champion" in no_policy.json()["detail"]
    ModelVersion.objects.filter(pk=champion.pk).update(status=ModelStatus.RETIRED)
    retired = predict(predictor, one)
    assert retired.status_code == 404 and "has no champion model to serve" in retired.json()["detail"]
    ModelVersion.objects.filter(pk=champion.pk).update(status=ModelStatus.CHAMPION)

    bad = {
        "At most 1000 items per call": {"items": [{"text": "a"}] * 1001},
        "Give at least one item": {"items": []},
        "items[1].text: must be a string, got int": {"items": [{"text": "ok"}, {"text": 12}]},
        "items[0].text: 20001 characters; at most 20000": {"items": [{"text": "x" * 20_001}]},
        "items[0].text: empty or only whitespace": {"items": [{"text": " \n\t"}]},
        "items[0].text: contains a NUL character": {"items": [{"text": "a\x00b"}]},
        "items[0].embedding: this model reads text only": {"items": [{"embedding": [0.1] * 16}]},
        "items[0]: give exactly one of 'text'": {"items": [{"id": "no content"}]},
        "items[0]: unknown field(s) 'label'": {"items": [{"text": "a", "label": "violating"}]},
        "items[0].id: a string of at most 200": {"items": [{"text": "a", "id": 5}]},
        "version": {**one, "version": 0},
    }
    for message, body in bad.items():
        response = predict(predictor, body)
        assert response.status_code == 400, (message, response.content[:300])
        assert message in response.json()["detail"], response.json()
    lone_surrogate = predictor.post(
        "/api/v1/models/abuse/predict", '{"items": [{"text": "a\\ud800b"}]}', content_type="application/json"
    )
    nan = predictor.post(
        "/api/v1/models/abuse/predict", '{"items": [{"text": "a"}], "version": NaN}', content_type="application/json"
    )
    assert lone_surrogate.status_code == 400 and "lone surrogate" in lone_surrogate.json()["detail"]
    assert nan.status_code == 400


def test_a_text_seen_before_is_scored_from_the_embedding_cache_without_running_minilm(db) -> None:
    """The predict path's MiniLM vectors: a text an item already has a cached vector for reuses it."""
    encoder = MiniLMEncoder()
    item = ContentItem.objects.create(source="s", external_id="e", text="seen before")
    cached = np.linspace(-1, 1, encoder.dim, dtype=np.float32)
    ItemEmbedding.objects.create(
        item=item, encoder_id=encoder.encoder_id, text_sha256=content_key(item.text), vector=cached.tobytes()
    )

    vectors = text_embeddings(encoder, ["seen before", "seen before"])

    assert np.array_equal(vectors, np.stack([cached, cached]))
    assert encoder._model is None  # the sentence encoder was never loaded
