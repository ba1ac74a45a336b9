"""Champion / challenger: a new model replaces the champion only when held-out gold says so.

Rule (all on one stratum of the test split of current gold, both models on the very same items):
- the challenger's macro-F1 minus the champion's has a paired-bootstrap 95 % interval whose
  lower end is above `AL_PROMOTION_MIN_GAIN` (0 by default: better, not "probably not worse");
- and on no slice (route, source, modality, language, region value with at least `AL_MIN_SLICE`
  items) is the challenger's macro-F1 more than `AL_SLICE_TOLERANCE` below the champion's.
Without a champion (or when the label schema changed), the bar is the majority-class baseline.
Otherwise the champion stays, and the decision says why in plain sentences.

Strata are never pooled (see `activelearning.strata`): the decision is taken on the traffic
stratum, weighted by inverse sampling propensity, when it has at least `AL_MIN_TEST` held-out
items; otherwise on imported gold, otherwise on the hard items active learning selected (each
unweighted). The comparison and every reason name the split and stratum used.

The test split is the challenger's (its stored split definition). When the champion was trained
under another definition (salt, rule, content-key version or fractions), its training data may
overlap that split, so the comparison is a new evaluation on fewer items: only those held out
under the challenger's definition that the champion never trained or tuned on, nor on a duplicate
of them (recomputed from the champion's definition and gold watermark). The decision says so.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from activelearning.strata import TRAFFIC, decision_stratum, effective_n, figure_label
from reviewapp.audit import SYSTEM, Actor, audit_record

from ..models import ModelStatus, ModelVersion, PromotionDecision, PromotionOutcome
from .datasets import SLICE_KEYS, held_out_unseen_by
from .deployment import deployment_on_promotion
from .evaluation import HeldOut, eval_probs, held_out
from .numeric import PairedDelta, finite_or_none, macro_f1, paired_bootstrap, predictions
from .splits import SplitDefinition


class ChampionChanged(Exception):
    """Another promotion changed the champion while this one computed; retrying re-judges."""


def model_version_promote(*, version_id: int, actor: Actor = SYSTEM) -> PromotionDecision:
    """Decide whether `version_id` becomes champion; idempotent (one decision per challenger).

    Computes without locks, then locks both versions in pk order and re-checks that the champion
    it compared against is still the champion (else raises ChampionChanged).
    """
    existing = PromotionDecision.objects.filter(challenger_id=version_id).first()
    if existing is not None:
        return existing
    challenger = ModelVersion.objects.select_related("policy").get(pk=version_id)
    champion = ModelVersion.objects.filter(policy_id=challenger.policy_id, status=ModelStatus.CHAMPION).first()
    outcome, reasons, comparison = judge(challenger, champion)
    with transaction.atomic():
        ids = sorted({challenger.pk, *([champion.pk] if champion else [])})
        locked = {v.pk: v for v in ModelVersion.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
        existing = PromotionDecision.objects.filter(challenger_id=version_id).first()
        if existing is not None:
            return existing
        current = ModelVersion.objects.filter(policy_id=challenger.policy_id, status=ModelStatus.CHAMPION).first()
        if (current.pk if current else None) != (champion.pk if champion else None):
            raise ChampionChanged(f"champion of {challenger.policy.key} changed during the comparison")
        if outcome == PromotionOutcome.PROMOTED:
            _swap(locked[challenger.pk], locked.get(champion.pk) if champion else None)
            # Promoted offline is not yet deployed: the new champion scores traffic in shadow until
            # a lead switches it live (services/deployment.py).
            deployment_on_promotion(version=challenger, actor=actor)
        decision = PromotionDecision.objects.create(
            policy_id=challenger.policy_id,
            challenger=challenger,
            champion=champion,
            outcome=outcome,
            reasons=reasons,
            comparison=finite_or_none(comparison),
            actor_label=actor.label,
        )
        audit_record(
            actor=actor,
            action=f"model.{outcome}",
            object_type="model_version",
            object_id=challenger.pk,
            before={"champion": champion.pk if champion else None},
            after={
                "champion": challenger.pk
                if outcome == PromotionOutcome.PROMOTED
                else (champion.pk if champion else None),
                "reasons": reasons,
            },
        )
    return decision


def _swap(challenger: ModelVersion, champion: ModelVersion | None) -> None:
    now = timezone.now()
    if champion is not None:  # retire first: at most one champion per policy, checked per statement
        champion.status, champion.retired_at = ModelStatus.RETIRED, now
        champion.save(update_fields=["status", "retired_at"])
    challenger.status, challenger.promoted_at = ModelStatus.CHAMPION, now
    challenger.save(update_fields=["status", "promoted_at"])


def judge(challenger: ModelVersion, champion: ModelVersion | None) -> tuple[str, list[str], dict[str, Any]]:
    """(outcome, reasons, comparison) without writing anything."""
    everything = held_out(challenger)
    sizes = everything.sizes()
    stratum = decision_stratum(sizes, settings.AL_MIN_TEST)
    comparable = champion is not None and champion.task == challenger.task and champion.classes == challenger.classes
    if stratum is None:
        counted = ", ".join(f"{name} {sizes[name]}" for name in ("traffic", "imported", "selected"))
        reason = (
            f"Held-out gold too small to judge: no stratum of the test split has {settings.AL_MIN_TEST} items "
            f"({counted}). Keep labelling."
        )
        return PromotionOutcome.REJECTED, [reason], {"n": len(everything.gold.item_ids), "split": "test", **sizes}
    rows, _ = everything.stratum(stratum)
    data = everything.restrict(rows)
    if not comparable:
        return _against_baseline(challenger, champion, data, stratum)
    return _against_champion(challenger, champion, data, stratum)  # type: ignore[arg-type]


def _where(stratum: str, weights: np.ndarray | None) -> dict[str, Any]:
    """The split and stratum a comparison used, for the stored comparison and its sentences."""
    n = len(weights) if weights is not None else 0
    n_eff = effective_n(weights) if weights is not None else 0.0
    weighted = stratum == TRAFFIC
    return {
        "split": "test",
        "stratum": stratum,
        "weighted": weighted,
        "n_eff": n_eff,
        "measured_on": figure_label("test", stratum, n=n, n_eff=n_eff, weighted=weighted),
    }


def _interval(delta: PairedDelta, where: dict[str, Any]) -> str:
    return (
        f"Δ macro-F1 {delta.delta:+.3f}, 95 % CI {delta.low:+.3f} to {delta.high:+.3f}, n={delta.n}; "
        f"on {where['measured_on']}"
    )


def _weights(data: HeldOut, stratum: str) -> np.ndarray | None:
    """Inverse propensities for traffic (the whole of `data` is one stratum), None (= equal) otherwise."""
    return data.stratum(TRAFFIC)[1] if stratum == TRAFFIC else None


def _against_baseline(
    challenger: ModelVersion, champion: ModelVersion | None, data: HeldOut, stratum: str
) -> tuple[str, list[str], dict[str, Any]]:
    y = data.gold.y_eval
    k = len(challenger.classes)
    weights = _weights(data, stratum)
    where = _where(stratum, weights if weights is not None else np.ones(len(y)))
    predicted = predictions(eval_probs(challenger, data), challenger.task)  # type: ignore[arg-type]
    if challenger.task == "multilabel":
        share = np.average(y, axis=0, weights=weights)
        baseline = np.ascontiguousarray(np.broadcast_to((share >= 0.5).astype(np.int64), y.shape))
    else:
        baseline = np.full_like(y, int(np.bincount(y, weights=weights, minlength=k).argmax()))
    delta = paired_bootstrap(
        y,
        baseline,
        predicted,
        k,
        n_bootstrap=settings.AL_PROMOTION_BOOTSTRAP,
        seed=challenger.pk,
        weights=weights,
    )
    why = "No champion yet" if champion is None else f"The label schema changed since champion {champion.version_label}"
    comparison = {
        "against": "majority_baseline",
        **asdict(delta),
        **where,
        "min_gain": settings.AL_PROMOTION_MIN_GAIN,
    }
    if delta.low > settings.AL_PROMOTION_MIN_GAIN:
        reasons = [
            f"{why}: macro-F1 {delta.challenger:.3f} beats the majority-class baseline {delta.champion:.3f} "
            f"({_interval(delta, where)})."
        ]
        return PromotionOutcome.PROMOTED, reasons, comparison
    reasons = [
        f"{why}, and the model is not reliably better than always predicting the majority class "
        f"({_interval(delta, where)})."
    ]
    return PromotionOutcome.REJECTED, reasons, comparison


def _against_champion(
    challenger: ModelVersion, champion: ModelVersion, data: HeldOut, stratum: str
) -> tuple[str, list[str], dict[str, Any]]:
    current = SplitDefinition.of(challenger)
    theirs = held_out(champion, watermark=data.gold.watermark, definition=current)
    common, mine_rows, their_rows = np.intersect1d(data.gold.item_ids, theirs.gold.item_ids, return_indices=True)
    split_change, split_note = _split_change(challenger, champion, data.gold.watermark), ""
    if split_change is not None:
        keep = np.isin(common, split_change.pop("item_ids"))
        split_change["held_out"], split_change["compared"] = len(common), int(keep.sum())
        common, mine_rows, their_rows = common[keep], mine_rows[keep], their_rows[keep]
        split_note = _split_note(champion, split_change, current)
    y = data.gold.y_eval[mine_rows]
    k = len(challenger.classes)
    all_weights = _weights(data, stratum)
    weights = all_weights[mine_rows] if all_weights is not None else None
    where = _where(stratum, weights if weights is not None else np.ones(len(y)))
    mine = predictions(eval_probs(challenger, data)[mine_rows], challenger.task)  # type: ignore[arg-type]
    old = predictions(eval_probs(champion, theirs)[their_rows], champion.task)  # type: ignore[arg-type]
    if len(common) < settings.AL_MIN_TEST:
        reason = (
            f"Only {len(common)} held-out items of the {stratum} stratum are readable by both models; "
            f"{settings.AL_MIN_TEST} needed."
        )
        reasons = [split_note, reason] if split_note else [reason]
        return PromotionOutcome.REJECTED, reasons, {"n": len(common), **where, "split_change": split_change}
    delta = paired_bootstrap(
        y, old, mine, k, n_bootstrap=settings.AL_PROMOTION_BOOTSTRAP, seed=challenger.pk, weights=weights
    )
    slice_values = {key: [data.gold.slices[key][i] for i in mine_rows] for key in SLICE_KEYS}
    slices = slice_deltas(slice_values, y, old, mine, k, weights=weights)
    worse = [s for s in slices if s["worse"]]
    comparison = {
        "against": f"champion {champion.version_label}",
        **asdict(delta),
        **where,
        "split_definition": current.as_dict(),
        "split_change": split_change,
        "slices": slices,
        "min_gain": settings.AL_PROMOTION_MIN_GAIN,
        "slice_tolerance": settings.AL_SLICE_TOLERANCE,
        "min_slice": settings.AL_MIN_SLICE,
    }
    reasons = []
    better = delta.low > settings.AL_PROMOTION_MIN_GAIN
    if not better:
        reasons.append(
            f"Not reliably better than champion {champion.version_label} ({_interval(delta, where)}); "
            "the lower end of the interval must be above 0."
        )
    reasons += worse_slice_reasons(worse)
    if better and not worse:
        reasons = [
            f"Beats champion {champion.version_label} ({_interval(delta, where)}) and is not worse on any of "
            f"{len(slices)} slices beyond {settings.AL_SLICE_TOLERANCE:.3f}."
        ]
        return PromotionOutcome.PROMOTED, [*([split_note] if split_note else []), *reasons], comparison
    reasons.append(f"Champion {champion.version_label} stays.")
    return PromotionOutcome.REJECTED, [*([split_note] if split_note else []), *reasons], comparison


def _split_change(challenger: ModelVersion, champion: ModelVersion, watermark: int) -> dict[str, Any] | None:
    """None when both versions share a split definition; otherwise what changed, and in
    "item_ids" the challenger's held-out items the champion never trained or tuned on."""
    current, earlier = SplitDefinition.of(challenger), SplitDefinition.of(champion)
    changed = current.differences(earlier)
    if not changed:
        return None
    unseen, recomputed = held_out_unseen_by(
        policy=challenger.policy,
        watermark=watermark,
        current=current,
        earlier=earlier,
        earlier_watermark=champion.gold_watermark,
    )
    return {
        "changed": changed,
        "champion_split": earlier.as_dict(),
        "champion_gold_watermark": champion.gold_watermark,
        "recomputed": recomputed,
        "item_ids": sorted(unseen),
    }


def _split_note(champion: ModelVersion, change: dict[str, Any], current: SplitDefinition) -> str:
    label, watermark = champion.version_label, change["champion_gold_watermark"]
    how = (
        f"its train and dev items recomputed from its split and gold ≤ #{watermark}"
        if change["recomputed"]
        else f"its split cannot be recomputed, so every item with gold ≤ #{watermark} counts as seen"
    )
    return (
        f"The split definition changed since champion {label} ({', '.join(change['changed'])}: "
        f"{SplitDefinition(**change['champion_split']).describe()} then, {current.describe()} now), so this is "
        f"a new evaluation: compared only on the {change['compared']} of {change['held_out']} held-out items "
        f"that {label} never trained or tuned on, nor a duplicate of them ({how})."
    )


def worse_slice_reasons(worse: list[dict[str, Any]]) -> list[str]:
    """One sentence per distinct worse slice, in order of the slices. Slices of different fields
    often hold the same items (every item of an imported dataset has one source, one modality, no
    region) and so the same figures: slices with the same size and figures share one sentence that
    names them all, instead of repeating it once per field."""
    groups: dict[tuple[int, float, float], list[str]] = {}
    for s in worse:
        groups.setdefault((s["n"], s["challenger"], s["champion"]), []).append(f"{s['key']}={s['value']}")
    return [
        f"Worse on {', '.join(dict.fromkeys(names))} (n={n}): macro-F1 {mine:.3f} vs {theirs:.3f}, "
        f"beyond the tolerance of {settings.AL_SLICE_TOLERANCE:.3f}."
        for (n, mine, theirs), names in groups.items()
    ]


def slice_deltas(
    slices: dict[str, list[str | None]],
    y: np.ndarray,
    old: np.ndarray,
    mine: np.ndarray,
    k: int,
    *,
    weights: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Macro-F1 of both models per slice value (weighted when `weights` are given), flagged when worse."""
    out = []
    for key, values in slices.items():
        labels = np.asarray(["unknown" if v is None else str(v) for v in values])
        for value in sorted(set(labels.tolist())):
            rows = np.flatnonzero(labels == value)
            if len(rows) < settings.AL_MIN_SLICE:
                continue
            w = weights[rows] if weights is not None else None
            theirs, ours = macro_f1(y[rows], old[rows], k, w), macro_f1(y[rows], mine[rows], k, w)
            out.append(
                {
                    "key": key,
                    "value": value,
                    "n": len(rows),
                    "champion": theirs,
                    "challenger": ours,
                    "delta": ours - theirs,
                    "worse": ours < theirs - settings.AL_SLICE_TOLERANCE,
                }
            )
    return out
