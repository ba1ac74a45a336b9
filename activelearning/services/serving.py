"""Serving registered models: the export bundle of a version, and predictions over REST.

Export (`model_bundle`): the version's `.pt` artifact is read and checked against its registered
sha256 first (a file that is missing or differs is refused, never exported), then rebuilt as a
self-describing bundle (`activelearning.bundle`): safetensors weights, config, model card. The
config and card come from the registry row, its promotion decision and the routing rule in force,
so a bundle says what its model is, how it was trained and measured, and how it is routed.

Predict (`model_predict`): items are validated and turned into features by the same functions a
bundle uses (`activelearning.predict_items`); MiniLM vectors of texts any item already has in the
`ItemEmbedding` cache are reused. Scores come from `registry.head_probs`, the function pool scoring
uses. Read-only: nothing is written, so there is no audit event.

torch is imported on first use (export or predict), not by importing this module: web processes
import it through the API views.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from activelearning.encoders import MiniLMEncoder
from activelearning.predict_items import ItemsError, check_items, model_features, predictions
from activelearning.strata import ALL, figure_label
from reviewapp.errors import Conflict, Invalid
from reviewapp.models import RoutingRule

from ..models import ModelVersion, PromotionDecision
from .features import encoder_from_stored, text_embeddings
from .registry import head_probs, model_root
from .splits import SplitDefinition

LEGACY_SPLIT = "item-id-sha256"


class ArtifactUnavailable(Conflict):
    """The version's artifact file is missing or does not hash to its registered sha256."""


class PredictInputInvalid(Invalid):
    """Items the model cannot score (the message names the item and the field)."""


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    filename: str


def model_bundle(*, version: ModelVersion) -> Bundle:
    """The version's bundle (same model, card and routing rule → same bytes). Raises ArtifactUnavailable."""
    # torch (through artifacts, heads and safetensors) is loaded by the first export, not at import.
    from activelearning.artifacts import ArtifactError, load_model
    from activelearning.bundle import build_bundle

    try:
        loaded = load_model(model_root() / version.artifact_path, expected_sha256=version.artifact_sha256)
    except ArtifactError as error:
        raise ArtifactUnavailable(_artifact_problem(version, error)) from error
    card = model_card(version)
    data = build_bundle(
        head=loaded.head,
        config=bundle_config(version, encoder=loaded.encoder),
        card=card,
        card_markdown=card_markdown(card),
    )
    return Bundle(data, hashlib.sha256(data).hexdigest(), f"{version.model_name}-{version.version_label}.zip")


def _artifact_problem(version: ModelVersion, error: Exception) -> str:
    missing = not (model_root() / version.artifact_path).is_file()
    what = "is missing" if missing else f"does not match its registered sha256 {version.artifact_sha256}"
    return (
        f"The artifact file of {version.model_name}@{version.version_label} {what}; it is not served. "
        "Restore the file from backup or train a new version."
    )


def thresholds_in_force(version: ModelVersion) -> dict[str, Any] | None:
    """The routing rule that applies to decisions sent as `al-<policy>`: its own, else the policy's '*'."""
    rules = {
        rule.model_name: rule
        for rule in RoutingRule.objects.filter(
            policy_id=version.policy_id, model_name__in=[version.model_name, RoutingRule.ANY_MODEL]
        )
    }
    rule = rules.get(version.model_name) or rules.get(RoutingRule.ANY_MODEL)
    if rule is None:
        return None
    return {
        "rule": rule.model_name,
        "applies_to": version.model_name,
        "auto_clear": rule.auto_clear,
        "auto_action": rule.auto_action,
        "audit_rate_clear": rule.audit_rate_clear,
        "audit_rate_action": rule.audit_rate_action,
        "meaning": "score ≥ auto_action: automatic action; score ≤ auto_clear: automatic clear; "
        "between them: human review; null turns that automatic outcome off",
    }


def bundle_config(version: ModelVersion, *, encoder: dict[str, Any]) -> dict[str, Any]:
    """config.json of the bundle, apart from what `build_bundle` adds (head, input schema, tensors)."""
    return {
        "model": {
            "id": version.pk,
            "name": version.model_name,
            "version": version.version_label,
            "number": version.number,
            "policy": version.policy.key,
            "artifact_sha256": version.artifact_sha256,
            "task": version.task,
            "head_labels": list(version.head_labels),
            "classes": list(version.classes),
            "positive_label": version.positive_label,
            "score": f"calibrated probability of {version.positive_label!r} (per-label temperature applied)",
        },
        "encoder": encoder,
        "thresholds": thresholds_in_force(version),
    }


def model_card(version: ModelVersion) -> dict[str, Any]:
    """What the model is for, what it was trained on, how it was measured and where it falls short."""
    metrics = version.metrics or {}
    decision = PromotionDecision.objects.filter(challenger=version).first()
    return {
        "model": f"{version.model_name}@{version.version_label}",
        "policy": {"key": version.policy.key, "name": version.policy.name},
        "created_at": version.created_at.isoformat(),
        "artifact_sha256": version.artifact_sha256,
        "encoder_id": version.encoder_id,
        "intended_use": (
            f"Scoring content for the {version.policy.name} policy: the score is the calibrated probability of "
            f"{version.positive_label!r}. Route with the thresholds in config.json (automatic action, automatic "
            "clear, human review between them), keeping a random audit sample of automatic decisions so their "
            "precision stays measured. Not for other policies or as the only check on irreversible actions."
        ),
        "training": {
            "training_run": version.training_run_id,
            "training_set_sha256": version.training_set_sha256,
            "gold_watermark": version.gold_watermark,
            "gold_snapshot": version.snapshot_id or None,
            "n_train": version.n_train,
            "n_dev": version.n_dev,
            "hyperparameters": version.hyperparameters,
            "epochs_run": version.training_history.get("epochs_run"),
            "best_epoch": version.training_history.get("best_epoch"),
        },
        "split": SplitDefinition.of(version).as_dict(),
        "evaluation": _evaluation(version, metrics),
        "promotion": {"outcome": decision.outcome, "reasons": decision.reasons} if decision else None,
        "limitations": limitations(version, metrics),
    }


def _evaluation(version: ModelVersion, metrics: dict[str, Any]) -> dict[str, Any]:
    if not version.evaluated_at:
        return {"evaluated": False}
    strata = metrics.get("strata") or {}
    return {
        "evaluated": True,
        "evaluated_at": version.evaluated_at.isoformat(),
        "measured_on": figure_label(metrics.get("split", "test"), ALL, n=int(metrics.get("n") or 0)),
        "strata_measured_on": {
            name: figure_label(
                s["split"], name, n=s["n"], n_eff=s.get("n_eff") or 0.0, weighted=bool(s.get("weighted"))
            )
            for name, s in strata.items()
        },
        "decision_stratum": metrics.get("decision_stratum"),
        "metrics": {key: value for key, value in metrics.items() if key != "pr_curves"},
    }


def limitations(version: ModelVersion, metrics: dict[str, Any]) -> list[str]:
    """Plain sentences: what the figures and the model cannot be trusted for."""
    out = []
    if not version.evaluated_at:
        out.append("Not evaluated on held-out gold: no figure supports its use yet.")
    elif int(metrics.get("n") or 0) < 100:
        out.append(f"Held-out figures rest on {int(metrics.get('n') or 0)} test items: their intervals are wide.")
    if version.evaluated_at and not metrics.get("decision_stratum"):
        out.append("No stratum had enough held-out items to judge promotion or thresholds on.")
    if version.evaluated_at and "traffic" not in (metrics.get("strata") or {}):
        out.append(
            "No held-out item came from live traffic (review band or audit sample): the figures describe imported "
            "or selected items, not the traffic the model will see."
        )
    if version.split_rule == LEGACY_SPLIT:
        out.append(
            "Legacy split by item id: duplicate texts can sit on both sides, so held-out figures are optimistic."
        )
    encoder = version.encoder_config
    if encoder.get("kind") == "hashed_ngram":
        out.append(f"Reads only the first {encoder.get('max_tokens')} tokens of a text; it sees no images or audio.")
    elif encoder.get("kind") == "minilm":
        out.append(
            f"Reads the first {encoder.get('max_seq_length')} word pieces of a text through an English sentence "
            "encoder; other languages are read poorly."
        )
    out.append(
        f"Trained on gold labels of {version.policy.key} up to #{version.gold_watermark}; when traffic or the "
        "policy's wording changes, its scores and calibration drift until it is retrained."
    )
    return out


def card_markdown(card: dict[str, Any]) -> str:
    """MODEL_CARD.md: the JSON card for people."""
    training, evaluation = card["training"], card["evaluation"]
    lines = [
        f"# {card['model']}",
        "",
        f"Policy **{card['policy']['name']}** (`{card['policy']['key']}`). Encoder `{card['encoder_id']}`. "
        f"Artifact sha256 `{card['artifact_sha256']}`.",
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Training data",
        "",
        f"- training set sha256 `{training['training_set_sha256']}`: {training['n_train']} train, "
        f"{training['n_dev']} dev (early stopping and temperature) items",
        f"- gold labels up to #{training['gold_watermark']}"
        + (f", snapshot `{training['gold_snapshot']}`" if training["gold_snapshot"] else ""),
        "- split: " + ", ".join(f"{k} `{v}`" for k, v in card["split"].items()),
        "",
        "## Held-out evaluation",
        "",
    ]
    if not evaluation["evaluated"]:
        lines.append("Not evaluated yet.")
    else:
        metrics = evaluation["metrics"]
        interval = (metrics.get("intervals") or {}).get("macro_f1") or {}
        lines += [
            f"- {evaluation['measured_on']}: macro-F1 {_fmt(metrics.get('macro_f1'))}"
            + (f" [{_fmt(interval.get('low'))}, {_fmt(interval.get('high'))}]" if interval else "")
            + f", PR-AUC {_fmt(metrics.get('macro_pr_auc'))}, ECE {_fmt(metrics.get('ece'))}",
        ]
        for name, label in evaluation["strata_measured_on"].items():
            stratum = metrics["strata"][name]
            lines.append(f"- {label}: macro-F1 {_fmt(stratum.get('macro_f1'))}")
        lines.append(f"- decision stratum: {evaluation['decision_stratum'] or 'none'}")
        lines.append("- slices and per-class figures: `model_card.json`, `evaluation.metrics`")
    lines += ["", "## Limitations", "", *(f"- {sentence}" for sentence in card["limitations"]), ""]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "—"


def model_predict(*, version: ModelVersion, items: list[Any]) -> list[dict[str, Any]]:
    """Per item: scores per head label, the positive label's score and the predicted label(s).

    Raises PredictInputInvalid for items the model cannot read, ArtifactUnavailable for a bad file.
    """
    from activelearning.artifacts import ArtifactError  # torch: see the module docstring

    encoder = encoder_from_stored(version.encoder_config)
    try:
        checked = check_items(items, encoder)
    except ItemsError as error:
        raise PredictInputInvalid(str(error)) from None
    embed = (lambda texts: text_embeddings(encoder, texts)) if isinstance(encoder, MiniLMEncoder) else None
    features = model_features(encoder, checked, embed)
    try:
        probs = head_probs(version, features)
    except ArtifactError as error:
        raise ArtifactUnavailable(_artifact_problem(version, error)) from error
    rows = predictions(
        probs,
        task=version.task,
        head_labels=version.head_labels,
        classes=version.classes,
        positive_label=version.positive_label,
    )
    for row, item_id in zip(rows, checked.ids, strict=True):
        if item_id is not None:
            row["id"] = item_id
    return rows
