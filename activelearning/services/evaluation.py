"""Honest held-out evaluation of a registered model on the test split of current gold.

The test split is the one of the version's own split definition (`splits.py`: a stable hash of each
item's content group for current models), so the version never trained on these items nor on a
duplicate of them; held-out items with a near duplicate in another split are left out and counted.
Metrics, intervals, calibration bins and slices come from `activelearning.evaluation`; PR curves
and the majority-class baseline are added here. Stored on `ModelVersion.metrics` (NaN → null).

The top-level figures pool every held-out stratum unweighted (`"stratum": "all"`). Beside them,
`metrics["strata"]` holds the same headline figures per stratum of `activelearning.strata`: the
traffic stratum weighted by inverse sampling propensity (with its effective sample size), the
hard items active learning and re-reviews select, imported datasets and honeypots each on their
own, unweighted; and `metrics["decision_stratum"]` names the one promotion and thresholds use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from django.conf import settings
from django.utils import timezone

from activelearning.evaluation import Task, evaluate
from activelearning.head_inputs import Bags, Features
from activelearning.strata import ALL, STRATA, TRAFFIC, decision_stratum, strata_of, stratum_report, stratum_weights

from ..models import ModelVersion
from .datasets import TEST, GoldSet, LabelSpace, gold_set, gold_watermark, slice_values
from .features import encoder_from_stored, item_features
from .numeric import finite_or_none, macro_f1, pr_curves
from .registry import head_probs
from .splits import SplitDefinition


def space_of(version: ModelVersion) -> LabelSpace:
    """The label space the version was trained with (not the policy's current one)."""
    return LabelSpace(
        cast(Task, version.task),
        tuple(version.classes),
        tuple(version.head_labels),
        tuple(version.classes),
        version.positive_label,
    )


@dataclass
class HeldOut:
    gold: GoldSet
    features: Features

    @property
    def strata(self) -> np.ndarray:
        """(n,) stratum name of each item, from the route of its gold label."""
        return strata_of(self.gold.slices["route"])

    def stratum(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, weights) of one stratum: inverse propensities in traffic, 1 elsewhere."""
        rows = np.flatnonzero(self.strata == name)
        return rows, stratum_weights(name, self.gold.propensity[rows])

    def restrict(self, rows: np.ndarray) -> HeldOut:
        """The same held-out data, only `rows` (kept in item order)."""
        rows = np.sort(rows)
        keep = np.zeros(len(self.gold.item_ids), dtype=bool)
        keep[rows] = True
        features = self.features.take(rows) if isinstance(self.features, Bags) else self.features[rows]
        return HeldOut(self.gold.subset(keep), features)

    def sizes(self) -> dict[str, int]:
        names = self.strata
        return {name: int((names == name).sum()) for name in STRATA}


def held_out(
    version: ModelVersion,
    *,
    watermark: int | None = None,
    part: int = TEST,
    definition: SplitDefinition | None = None,
) -> HeldOut:
    """The current gold of one split (test unless told) the version's encoder can read, with features.

    Dev is for choices (early stopping, temperature, routing thresholds); test for reporting them.
    The split is the version's own definition unless `definition` names another (promotion
    measures a champion on the challenger's test items).
    """
    encoder = encoder_from_stored(version.encoder_config)
    gold = gold_set(
        policy=version.policy,
        space=space_of(version),
        watermark=watermark or gold_watermark(version.policy_id),
        with_embeddings=version.encoder == "upstream",
        only=part,
        split=definition or SplitDefinition.of(version),
    )
    features = item_features(encoder, item_ids=gold.item_ids.tolist(), texts=gold.texts, embeddings=gold.embeddings)
    return HeldOut(gold.subset(features.kept), features.features)


def eval_probs(version: ModelVersion, data: HeldOut) -> np.ndarray:
    return space_of(version).eval_probs(head_probs(version, data.features))


def n_classes(version: ModelVersion) -> int:
    return len(version.classes)


def model_version_evaluate(*, version_id: int, n_bootstrap: int | None = None) -> dict:
    """Evaluate on held-out gold and store the metrics on the version (idempotent: recomputed)."""
    version = ModelVersion.objects.select_related("policy", "training_run").get(pk=version_id)
    if n_bootstrap is None:
        n_bootstrap = int(version.training_run.params.get("n_bootstrap", settings.AL_BOOTSTRAP))
    data = held_out(version)
    if len(data.gold.item_ids) == 0:
        metrics = {"n": 0, "note": "no held-out gold the encoder can read"}
    else:
        metrics = _metrics(version, data, n_bootstrap)
    version.metrics = finite_or_none(metrics)
    version.evaluated_at = timezone.now()
    version.save(update_fields=["metrics", "evaluated_at"])
    return version.metrics


def _metrics(version: ModelVersion, data: HeldOut, n_bootstrap: int) -> dict:
    probs = eval_probs(version, data)
    y = data.gold.y_eval
    report = evaluate(
        y,
        probs,
        task=cast(Task, version.task),
        classes=version.classes,  # type: ignore[arg-type]
        slices=slice_values(data.gold, np.arange(len(y))),
        min_slice_size=settings.AL_MIN_SLICE,
        n_bootstrap=n_bootstrap if len(y) >= 2 else 0,
    )
    indicator, scores = _per_class(version.task, y, probs, len(version.classes))
    curves = pr_curves(indicator, scores, version.classes)
    if version.task == "binary":
        curves = {k: v for k, v in curves.items() if k == version.positive_label}
    return {
        **report.to_dict(),
        "pr_curves": curves,
        "prevalence": {c: float(indicator[:, j].mean()) for j, c in enumerate(version.classes)},
        "baseline_macro_f1": _majority_baseline(version.task, y, len(version.classes)),
        "gold_watermark": data.gold.watermark,
        "n_bootstrap": n_bootstrap,
        "split": "test",
        "stratum": ALL,
        "strata": _strata_metrics(version, data, probs, n_bootstrap),
        "decision_stratum": decision_stratum(data.sizes(), settings.AL_MIN_TEST),
        "held_out_skipped": dict(data.gold.skipped),
    }


def _strata_metrics(version: ModelVersion, data: HeldOut, probs: np.ndarray, n_bootstrap: int) -> dict:
    """Headline figures of each non-empty stratum (see `activelearning.strata`), with intervals."""
    out = {}
    for name in STRATA:
        rows, weights = data.stratum(name)
        if len(rows) == 0:
            continue
        report = stratum_report(
            data.gold.y_eval[rows],
            probs[rows],
            task=version.task,
            classes=version.classes,  # type: ignore[arg-type]
            weights=weights,
            n_bootstrap=n_bootstrap,
            seed=version.pk,
        )
        out[name] = {"stratum": name, "split": "test", "weighted": name == TRAFFIC, **report}
    return out


def _per_class(task: str, y: np.ndarray, probs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if task == "binary":
        return np.eye(2, dtype=np.int64)[y], np.column_stack([1 - probs, probs])
    if task == "multiclass":
        return np.eye(n, dtype=np.int64)[y], probs
    return y, probs


def _majority_baseline(task: str, y: np.ndarray, n: int) -> float:
    """Macro-F1 of always predicting the most frequent class (multilabel: each label's majority)."""
    if task == "multilabel":
        constant = np.broadcast_to((y.mean(axis=0) >= 0.5).astype(np.int64), y.shape)
        return macro_f1(y, np.ascontiguousarray(constant), n)
    majority = int(np.bincount(y, minlength=n).argmax())
    return macro_f1(y, np.full_like(y, majority), n)
