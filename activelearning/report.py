"""What the models and round pages show: charts and tables built from registry rows.

Charts are the numeric core's standalone SVG (`activelearning.plots`), which escapes every label;
they are inlined in the page (no script, no external resource, fine under the strict CSP).
"""

from __future__ import annotations

import math
from typing import Any

from django.utils.safestring import SafeString, mark_safe

from activelearning.evaluation import ReliabilityBin
from activelearning.plots import line_chart_svg, reliability_svg
from activelearning.strata import ALL, STRATA, figure_label
from labeling.models import Policy, readable_key
from reviewapp.models import ContentItem

from .models import (
    Encoder,
    ModelStatus,
    ModelVersion,
    PromotionDecision,
    ProposalStatus,
    RunStage,
    ScoreChunk,
    ScoringRun,
    SelectionRound,
    ThresholdProposal,
    TrainingRun,
)
from .services.pipeline import round_stages
from .services.rounds import round_gold_shortfall
from .services.thresholds import threshold_sources
from .strategies import strategy_title

POOLED = "test · all strata pooled"
STRATUM_FIGURES = (
    ("macro_f1", "Macro-F1"),
    ("macro_precision", "Macro precision"),
    ("macro_recall", "Macro recall"),
    ("macro_pr_auc", "PR-AUC"),
    ("ece", "ECE"),
)


def _svg(svg: str) -> SafeString:
    return mark_safe(svg)  # noqa: S308 (activelearning.plots escapes every label it writes)


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _class_title(version: ModelVersion) -> Any:
    """A class key as people read it: its title under the policy's version in force."""
    policy_version = version.policy.current_version()
    if policy_version is None:
        return readable_key
    return lambda key: policy_version.label_title(key) if key in policy_version.label_values else readable_key(key)


def pr_chart(version: ModelVersion) -> SafeString | None:
    curves = version.metrics.get("pr_curves") or {}
    if not curves:
        return None
    prevalence = version.metrics.get("prevalence") or {}
    title = _class_title(version)
    return _svg(
        line_chart_svg(
            {title(name): [tuple(point) for point in points] for name, points in curves.items()},
            title=f"Precision–recall, {POOLED} ({version.version_label})",
            x_label="recall",
            y_label="precision",
            hlines={
                f"prevalence of {title(name)}": prevalence[name] for name in curves if prevalence.get(name) is not None
            },
        )
    )


def reliability_chart(version: ModelVersion) -> SafeString | None:
    bins = version.metrics.get("reliability") or []
    if not any(b.get("count") for b in bins):
        return None
    parsed = [
        ReliabilityBin(b["lower"], b["upper"], b["count"], _nan(b["mean_confidence"]), _nan(b["observed_frequency"]))
        for b in bins
    ]
    return _svg(reliability_svg(parsed, title=f"Calibration, {POOLED} ({version.version_label})"))


def loss_chart(version: ModelVersion) -> SafeString | None:
    history = version.training_history or {}
    series = {
        name: [(float(epoch), float(loss)) for epoch, loss in enumerate(history.get(key) or [], start=1)]
        for name, key in (("train loss", "train_loss"), ("dev loss", "dev_loss"))
    }
    series = {name: points for name, points in series.items() if points}
    if not series:
        return None
    return _svg(line_chart_svg(series, title=f"Training of {version.version_label}", x_label="epoch", y_label="loss"))


def learning_curve(versions: list[ModelVersion]) -> SafeString | None:
    """Held-out macro-F1 against training-set size, one point per evaluated version of the policy."""
    points = sorted((v.n_train, v.metrics["macro_f1"]) for v in versions if v.metrics.get("macro_f1") is not None)
    if len(points) < 2:
        return None
    baselines = [v.metrics.get("baseline_macro_f1") for v in versions if v.metrics.get("baseline_macro_f1") is not None]
    return _svg(
        line_chart_svg(
            {f"macro-F1 ({POOLED})": [(float(n), float(f1)) for n, f1 in points]},
            title="Learning curve: one point per model version",
            x_label="training labels",
            y_label="macro-F1",
            hlines={"majority-class baseline": baselines[-1]} if baselines else None,
        )
    )


def models_context(policy: Policy | None, version_id: str | None) -> dict[str, Any]:
    """Everything the models page shows for one policy."""
    if policy is None:
        return {}
    versions = list(
        ModelVersion.objects.filter(policy=policy).select_related("training_run", "policy").order_by("-number")[:50]
    )
    champion = next((v for v in versions if v.status == ModelStatus.CHAMPION), None)
    selected = (
        next((v for v in versions if str(v.pk) == version_id), None) or champion or (versions[0] if versions else None)
    )
    context: dict[str, Any] = {
        "versions": versions,
        "champion": champion,
        "selected": selected,
        "decisions": PromotionDecision.objects.filter(policy=policy)
        .select_related("challenger", "champion", "challenger__policy", "champion__policy")
        .order_by("-created_at")[:20],
        "proposals": ThresholdProposal.objects.filter(policy=policy)
        .select_related("model_version", "decided_by")
        .order_by("-created_at")[:10],
        "runs": TrainingRun.objects.filter(policy=policy).select_related("model_version").order_by("-created_at")[:10],
        "learning_curve": learning_curve(versions),
        "round_blocked": round_gold_shortfall(policy=policy),
    }
    context["proposal_rows"] = [
        {"proposal": p, "sources": threshold_sources(p.estimates)} for p in context["proposals"]
    ]
    context["version_rows"] = [{"version": v, "decision": decision_figure(v)} for v in versions]
    if selected is not None:
        context.update(
            strata=strata_rows(selected),
            pooled=pooled_label(selected),
            pr_chart=pr_chart(selected),
            reliability_chart=reliability_chart(selected),
            loss_chart=loss_chart(selected),
            slices=_slice_rows(selected),
        )
    return context


def pooled_label(version: ModelVersion) -> str:
    return figure_label(version.metrics.get("split", "test"), ALL, n=int(version.metrics.get("n") or 0))


def strata_rows(version: ModelVersion) -> list[dict[str, Any]]:
    """One row per stratum of the version's held-out figures: where from, each figure with its interval."""
    decided_on = version.metrics.get("decision_stratum")
    rows = []
    for name in STRATA:
        stratum = (version.metrics.get("strata") or {}).get(name)
        if not stratum:
            continue
        intervals = stratum.get("intervals") or {}
        rows.append(
            {
                "stratum": name,
                "label": _stratum_label(stratum),
                "decides": name == decided_on,
                "figures": [
                    {"value": stratum.get(key), **{k: (intervals.get(key) or {}).get(k) for k in ("low", "high")}}
                    for key, _ in STRATUM_FIGURES
                ],
            }
        )
    return rows


def decision_figure(version: ModelVersion) -> dict[str, Any] | None:
    """Macro-F1 on the stratum promotion uses, with its label; None before strata were kept apart."""
    stratum = (version.metrics.get("strata") or {}).get(version.metrics.get("decision_stratum") or "")
    if not stratum:
        return None
    interval = (stratum.get("intervals") or {}).get("macro_f1") or {}
    return {
        "label": _stratum_label(stratum),
        "macro_f1": stratum.get("macro_f1"),
        "low": interval.get("low"),
        "high": interval.get("high"),
    }


def _stratum_label(stratum: dict[str, Any]) -> str:
    return figure_label(
        stratum["split"],
        stratum["stratum"],
        n=stratum["n"],
        n_eff=stratum.get("n_eff") or 0.0,
        weighted=stratum["weighted"],
    )


def _slice_rows(version: ModelVersion) -> list[dict[str, Any]]:
    rows = []
    for summary in version.metrics.get("slices") or []:
        # "Worst" only means something when there are at least two slices to compare.
        compared = sum(1 for s in summary["slices"] if s["eligible"]) >= 2
        for s in summary["slices"]:
            rows.append({"key": summary["key"], **s, "worst": compared and s["value"] == summary.get("worst_value")})
    return rows


def run_context(run: TrainingRun) -> dict[str, Any]:
    """The round page: stages with timings, progress, log, and what the round produced."""
    version = ModelVersion.objects.filter(training_run=run).select_related("policy").first()
    scoring = ScoringRun.objects.filter(training_run=run).order_by("-pk").first()
    order: list[str] = [stage.name for stage in round_stages()]
    current = order.index(run.stage) if run.stage in order else 0
    stages = [
        {
            "key": stage,
            "name": RunStage(stage).label,
            "state": "done"
            if i < current or run.stage == RunStage.DONE
            else ("current" if i == current else "pending"),
            "seconds": run.timings.get(stage),
        }
        for i, stage in enumerate(order)
        if stage not in (RunStage.QUEUED, RunStage.DONE)
    ]
    selection = SelectionRound.objects.filter(training_run=run).select_related("queue").first()
    encoder = run.params.get("encoder")
    return {
        "run": run,
        "encoder_name": dict(Encoder.choices).get(encoder, encoder),
        "strategy_name": strategy_title(run.params.get("strategy") or ""),
        "stages": stages,
        "percent": round(run.progress * 100),
        "log_lines": run.log.splitlines()[-200:],
        "version": version,
        "decision": PromotionDecision.objects.filter(challenger=version).first() if version else None,
        "scoring": scoring,
        "chunks_done": ScoreChunk.objects.filter(scoring_run=scoring).count() if scoring else 0,
        "selection": selection,
        "selection_strategy_name": strategy_title(selection.strategy) if selection else "",
        "chosen_rows": chosen_rows(selection),
        "chosen_shown": CHOSEN_SHOWN,
        "proposal": ThresholdProposal.objects.filter(policy=run.policy, status=ProposalStatus.PENDING).first(),
    }


CHOSEN_SHOWN = 50


def chosen_rows(selection: SelectionRound | None) -> list[dict[str, Any]]:
    """The first `CHOSEN_SHOWN` picks of a selection with their item's text, for the round page."""
    if selection is None:
        return []
    chosen = list(selection.chosen[:CHOSEN_SHOWN])
    items = ContentItem.objects.in_bulk([c["item_id"] for c in chosen])
    return [{**c, "item": items.get(c["item_id"])} for c in chosen]
