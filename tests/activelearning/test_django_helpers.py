"""Shared set-up for the Django-side active-learning tests (no tests here).

Real data, loaded as content items with gold labels under a binary policy (violating /
not_violating), from the crowd-majority label of each item:
- ConvAbuse (Cercas Curry et al., EMNLP 2021; CC BY 4.0): abuse towards conversational agents,
  learnable from a few hundred labels (held-out ROC-AUC ≈ 0.9) — for tests that need a model
  that beats a baseline (800 gold: abusive texts repeat, so with splits by content the first
  few hundred items leave only a handful of distinct abusive texts in the test split);
- Toxic Spans (CC0): toxic vs not among already-flagged comments, hard from a few hundred
  labels (ROC-AUC ≈ 0.57) — a realistic weak model.
Tests skip, naming `make data`, when the datasets are not in REVIEWAPP_DATA_DIR.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from activelearning.models import LabelErrorRun, ModelVersion, ThresholdProposal, TrainingRun
from activelearning.services.registry import model_root
from activelearning.services.splits import SplitDefinition
from labeling.datasets import read_convabuse, read_toxic_spans
from labeling.models import GoldLabel, Policy
from reviewapp.models import ContentItem, Queue
from tests.conftest import dataset_dir
from tests.factories import PolicyFactory, QueueFactory, RoutingRuleFactory

READERS = {
    "toxic-spans": (read_toxic_spans, "toxic"),
    "convabuse": (read_convabuse, "abusive"),
}
# Small and fast: hashed n-grams into a small table, a small hidden layer, few bootstrap resamples.
FAST_ROUND: dict[str, Any] = {
    "encoder": "hashed",
    "num_buckets": 4096,
    "n_bootstrap": 20,
    "budget": 10,
    "head": {"hidden": 32, "max_epochs": 20, "embedding_dim": 16},
}
_CACHE: dict[tuple[str, int], list] = {}


def records(dataset: str, limit: int) -> list:
    """The first `limit` records of a shared dataset that have a crowd-majority label."""
    reader, _ = READERS[dataset]
    folder = dataset_dir(dataset)
    if (dataset, limit) not in _CACHE:
        _CACHE[(dataset, limit)] = [r for r in reader(folder, limit=limit) if r.label is not None]
    return _CACHE[(dataset, limit)]


def al_policy(key: str = "toxicity") -> tuple[Policy, Queue]:
    """A binary policy (violating / not_violating) with a review queue as its default route."""
    policy = PolicyFactory(key=key, severity_weight=2.0)
    queue = QueueFactory(slug=f"{key}-review", sla_minutes=120)
    RoutingRuleFactory(policy=policy, queue=queue, auto_clear=0.2, auto_action=0.9)
    return policy, queue


def load_items(policy: Policy, dataset: str, *, items: int, gold: int) -> tuple[list[int], list[int]]:
    """`items` records as content; the first `gold` get gold labels. Returns (gold item ids, pool item ids)."""
    rows = records(dataset, items)
    created = ContentItem.objects.bulk_create(
        ContentItem(
            source=dataset,
            external_id=r.external_id,
            text=r.text,
            metadata={"language": "en", "region": ("GB", "US")[i % 2]},
        )
        for i, r in enumerate(rows)
    )
    harmful = READERS[dataset][1]
    version = policy.current_version()
    GoldLabel.objects.bulk_create(
        GoldLabel(
            item=item,
            policy=policy,
            policy_version=version,
            source="adjudication",
            route="backfill",
            labels=["violating" if r.label == harmful else "not_violating"],
        )
        for item, r in zip(created[:gold], rows[:gold], strict=True)
    )
    return [c.pk for c in created[:gold]], [c.pk for c in created[gold:]]


@pytest.fixture
def model_files(settings) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """Artifacts of this test, removed afterwards (the worker writes to the same folder)."""
    root = model_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def tiny_artifact(policy: Policy) -> dict[str, Any]:
    """A real (tiny, barely trained) hashed n-gram head on disk, as `ModelVersion` fields: enough for
    the artifact download and predict endpoints to answer 200 in the role matrix and the API fuzz."""
    from activelearning.artifacts import save_model
    from activelearning.encoders import HashedNgramConfig, HashedNgramEncoder
    from activelearning.head_inputs import Bags, HeadConfig
    from activelearning.heads import train_head

    encoder = HashedNgramEncoder(HashedNgramConfig(num_buckets=64))
    texts = ["you are kind", "you are an idiot", "thanks a lot", "shut up idiot"]
    y = np.asarray([[0.0], [1.0], [0.0], [1.0]], dtype=np.float32)
    config = HeadConfig(hidden=0, max_epochs=2, embedding_dim=4)
    head = train_head(Bags.from_list(encoder.bags(texts), 64), y, None, None, labels=["violating"], config=config)
    relative = f"{policy.key}/tiny-{policy.pk}.pt"
    info = save_model(model_root() / relative, head, encoder=encoder.config())
    return {
        "artifact_path": relative,
        "artifact_sha256": info.sha256,
        "artifact_bytes": info.size,
        "encoder_id": encoder.encoder_id,
        "encoder_config": encoder.config(),
    }


def permission_objects(policy: Policy) -> dict[str, Any]:
    """A round, a model version (with a real tiny artifact), a pending threshold proposal and a
    label-error run, for the role matrix."""
    run = TrainingRun.objects.create(policy=policy, status="succeeded", stage="done", params={"encoder": "hashed"})
    version = ModelVersion.objects.create(
        policy=policy,
        training_run=run,
        number=1,
        **tiny_artifact(policy),
        encoder="hashed",
        task="binary",
        head_labels=["violating"],
        classes=["not_violating", "violating"],
        positive_label="violating",
        gold_watermark=0,
        training_set_sha256="0" * 64,
        **SplitDefinition.current().model_fields(),
        n_train=0,
        n_dev=0,
    )
    proposal = ThresholdProposal.objects.create(
        policy=policy,
        model_version=version,
        model_name=version.model_name,
        target_precision=0.95,
        target_recall=0.95,
        auto_action=0.9,
        auto_clear=0.1,
    )
    label_error_run = LabelErrorRun.objects.create(policy=policy, encoder="hashed", k=5, seed=0)
    return {
        "run_id": run.pk,
        "model_id": version.pk,
        "proposal_id": proposal.pk,
        "label_error_run_id": label_error_run.pk,
        "policy_key": policy.key,
    }
