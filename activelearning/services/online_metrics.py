"""Online figures of a policy's production models, per model version and ISO week, from live data.

Read from existing tables only:
- `reviewapp.ModelDecision` — every decision, its routing outcome, whether it was sampled into
  audit and with what probability (`sampling_propensity`, the rule's audit rate at the time);
- `labeling.GoldLabel` — the current gold of the decision's (item, policy): the truth;
- `labeling.Appeal` — appeals of automatic actions, upheld or overturned.

A decision belongs to the ISO week (Monday 00:00 UTC) of its upstream `decided_at`, or of
`received_at` when upstream sent none. Figures per (model_name, model_version, week):

- **precision of automatic actions** and **miss rate of automatic clears**: the Hájek estimate
  over the audit-sampled decisions of that outcome that have gold, each weighted by
  1 / sampling propensity, with a 95 % interval and Kish's n_eff (`activelearning.online`). Audit
  samples still waiting for their label are counted (`sampled_*`) but are not in the estimate:
  if labelling order depended on the outcome, the pending ones could differ.
- **alert** when the precision interval's upper bound is below the target precision: the data
  then say, at 95 %, that automation enforces wrongly more often than the target allows. The
  target is that of the latest approved threshold proposal for the model name (the precision its
  thresholds were chosen for), else `settings.AL_TARGET_PRECISION`.
- **appeal overturn rate**: decided appeals of this model version's automatic actions made that
  week (the week of the decision, so the overturn lands on the row of the decision it corrects),
  overturned = the appeal's gold differs from the automatic action; Wilson interval.
- **calibration** per model version over the whole window: reliability bins of its live scores
  against gold on traffic that reached people by design — audit-sampled automatic decisions
  (weight 1/π) and the review band (every item sent, π = 1) — with the weighted ECE.

A gold label "is a violation" when it contains the policy's violating label (the label-space
convention of `activelearning.services.datasets.label_space`: the first label not named "not_…",
"no_…" or "non_…").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, TruncWeek
from django.utils import timezone

from labeling.models import Appeal, AppealStatus, GoldLabel, Policy
from labeling.stats.proportions import wilson_interval
from reviewapp.models import ModelDecision, RoutingOutcome

from ..models import ProposalStatus, ThresholdProposal
from ..online import ESTIMATOR, INTERVAL, Reliability, WeightedShare, hajek_share, weighted_reliability
from .datasets import TrainingDataError, label_space

DEFAULT_WEEKS = 12
MAX_WEEKS = 104
DEFAULT_TARGET_SOURCE = "AL_TARGET_PRECISION (no approved threshold proposal)"
DEFAULT_VERSIONS = 6  # model versions shown, most recently seen first


@dataclass(frozen=True)
class Overturns:
    decided: int
    overturned: int

    @property
    def rate(self) -> float | None:
        return self.overturned / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.overturned, self.decided) if self.decided else None

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval or (None, None)
        return {"decided": self.decided, "overturned": self.overturned, "rate": self.rate, "low": low, "high": high}


@dataclass(frozen=True)
class WeekFigures:
    week: str  # ISO week, "2026-W14"
    week_start: date
    decisions: int
    auto_enforced: int
    auto_cleared: int
    sampled_enforced: int  # audit-sampled, labelled or not
    sampled_cleared: int
    precision: WeightedShare  # violations among audited auto-enforced
    miss_rate: WeightedShare  # violations among audited auto-cleared
    overturns: Overturns
    alert: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "week_start": self.week_start.isoformat(),
            "decisions": self.decisions,
            "auto_enforced": self.auto_enforced,
            "auto_cleared": self.auto_cleared,
            "sampled_enforced": self.sampled_enforced,
            "sampled_cleared": self.sampled_cleared,
            "precision": self.precision.as_dict(),
            "clear_miss_rate": self.miss_rate.as_dict(),
            "appeals": self.overturns.as_dict(),
            "alert": self.alert,
        }


@dataclass(frozen=True)
class ModelFigures:
    model_name: str
    model_version: str
    target_precision: float
    target_source: str
    last_seen: datetime
    weeks: list[WeekFigures]  # oldest first
    calibration: Reliability

    @property
    def label(self) -> str:
        return f"{self.model_name}@{self.model_version}"

    @property
    def alerting(self) -> bool:
        return any(week.alert for week in self.weeks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "target_precision": self.target_precision,
            "target_source": self.target_source,
            "alert": self.alerting,
            "weeks": [week.as_dict() for week in self.weeks],
            "calibration": {
                "measured_on": calibration_label(self.calibration),
                "ece": self.calibration.ece,
                "n": self.calibration.n,
                "n_eff": round(self.calibration.n_eff, 3),
                "bins": [vars(b) for b in self.calibration.bins],
            },
        }


@dataclass(frozen=True)
class OnlineMetrics:
    policy: Policy
    violating_label: str
    since: date
    models: list[ModelFigures] = field(default_factory=list)

    @property
    def measured_on(self) -> str:
        return (
            f"audit-sample gold since {self.since.isoformat()} (ISO weeks, UTC): automatic decisions sampled "
            f"into audit and labelled, each weighted by 1 / sampling propensity; {ESTIMATOR}; {INTERVAL}; "
            f"a violation is gold containing '{self.violating_label}'"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.key,
            "since": self.since.isoformat(),
            "violating_label": self.violating_label,
            "estimator": ESTIMATOR,
            "interval": INTERVAL,
            "measured_on": self.measured_on,
            "models": [model.as_dict() for model in self.models],
        }


def share_label(share: WeightedShare) -> str:
    """What a figure was measured on, in words: "audit-sample gold, n=12, n_eff=9.4, weighted 1/π"."""
    if not share.measured:
        return f"no estimate: {share.reason}"
    return f"audit-sample gold, n={share.n}, n_eff={share.n_eff:.1f}, weighted 1/π"


def calibration_label(reliability: Reliability) -> str:
    return (
        f"audit-sampled automatic decisions (weighted 1/π) and the review band (π = 1) with gold, "
        f"n={reliability.n}, n_eff={reliability.n_eff:.1f}"
    )


def week_start(at: date | datetime) -> date:
    day = at.date() if isinstance(at, datetime) else at
    return day - timedelta(days=day.weekday())


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def online_metrics_compute(
    *, policy: Policy, weeks: int = DEFAULT_WEEKS, versions: int = DEFAULT_VERSIONS, now: datetime | None = None
) -> OnlineMetrics:
    """The figures of `policy`'s `versions` most recently seen model versions over the last `weeks`
    ISO weeks (the current one included). Reads only; a handful of queries whatever the volume."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise ValueError(f"weeks must be between 1 and {MAX_WEEKS}")
    since = week_start(timezone.localtime(now or timezone.now())) - timedelta(weeks=weeks - 1)
    since_at = datetime.combine(since, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    decisions = (
        ModelDecision.objects.filter(policy=policy)
        .annotate(at=Coalesce("decided_at", "received_at"))
        .filter(at__gte=since_at)
        .annotate(week=TruncWeek("at"))
    )
    counts = _counts(decisions)
    keep = sorted(counts["last_seen"], key=lambda key: counts["last_seen"][key], reverse=True)[:versions]
    violating = _violating_label(policy)
    labelled = _labelled(decisions.filter(model_version__in={v for _, v in keep}), violating)
    appeals = _appeals(policy, since_at)
    targets = _targets(policy)
    models = []
    for key in keep:
        target, source = targets.get(
            key[0], (settings.AL_TARGET_PRECISION, "AL_TARGET_PRECISION (no approved proposal)")
        )
        week_rows = [
            _week(key, start, counts, labelled, appeals, target)
            for start in sorted({start for (k, start) in counts["decisions"] if k == key})
        ]
        traffic = labelled.get(key, [])
        calibration = weighted_reliability([r[2] for r in traffic], [r[3] for r in traffic], [r[4] for r in traffic])
        models.append(ModelFigures(key[0], key[1], target, source, counts["last_seen"][key], week_rows, calibration))
    return OnlineMetrics(policy=policy, violating_label=violating, since=since, models=models)


Key = tuple[str, str]


def _counts(decisions: Any) -> dict[str, dict]:
    rows = decisions.values("model_name", "model_version", "week", "routing_outcome").annotate(
        n=Count("pk"), sampled=Count("pk", filter=Q(audit_sampled=True))
    )
    out: dict[str, dict] = {"decisions": defaultdict(int), "outcome": defaultdict(int), "sampled": defaultdict(int)}
    last_seen: dict[Key, datetime] = {}
    for row in rows:
        key, start = (row["model_name"], row["model_version"]), row["week"].date()
        out["decisions"][(key, start)] += row["n"]
        out["outcome"][(key, start, row["routing_outcome"])] += row["n"]
        out["sampled"][(key, start, row["routing_outcome"])] += row["sampled"]
        last_seen[key] = max(last_seen.get(key, row["week"]), row["week"])
    out["last_seen"] = last_seen
    return out


def _violating_label(policy: Policy) -> str:
    try:
        return label_space(policy).positive_label
    except TrainingDataError:  # no version in force: no gold to read either
        return "violating"


Labelled = dict[Key, list[tuple[date, str, float, bool, float]]]


def _labelled(decisions: Any, violating: str) -> Labelled:
    """Decisions people judged by design, with current gold: (week, outcome, score, violation, propensity).

    Audit-sampled automatic decisions carry their propensity; the review band is sent to people
    whole, so its propensity is 1 whatever the row stored.
    """
    gold = GoldLabel.objects.filter(item=OuterRef("item_id"), policy=OuterRef("policy_id")).order_by("-version")
    rows = (
        decisions.filter(Q(audit_sampled=True) | Q(routing_outcome=RoutingOutcome.REVIEW))
        .annotate(gold_labels=Subquery(gold.values("labels")[:1]))
        .filter(gold_labels__isnull=False)
        .values_list(
            "model_name", "model_version", "week", "routing_outcome", "score", "sampling_propensity", "gold_labels"
        )
    )
    out: Labelled = defaultdict(list)
    for name, version, week, outcome, score, propensity, labels in rows:
        pi = 1.0 if outcome == RoutingOutcome.REVIEW else propensity
        out[(name, version)].append((week.date(), outcome, score, violating in labels, pi))
    return out


def _appeals(policy: Policy, since_at: datetime) -> dict[tuple[Key, date], Overturns]:
    rows = (
        Appeal.objects.filter(policy=policy, original_source="model", decision__isnull=False)
        .exclude(status=AppealStatus.OPEN)
        .annotate(at=Coalesce("decision__decided_at", "decision__received_at"))
        .filter(at__gte=since_at)
        .annotate(week=TruncWeek("at"))
        .values("decision__model_name", "decision__model_version", "week")
        .annotate(n=Count("pk"), o=Count("pk", filter=Q(status=AppealStatus.OVERTURNED)))
    )
    return {
        ((r["decision__model_name"], r["decision__model_version"]), r["week"].date()): Overturns(r["n"], r["o"])
        for r in rows
    }


def _targets(policy: Policy) -> dict[str, tuple[float, str]]:
    """Target precision per model name: the latest approved threshold proposal's."""
    approved = (
        ThresholdProposal.objects.filter(policy=policy, status=ProposalStatus.APPROVED)
        .order_by("model_name", "-decided_at", "-pk")
        .distinct("model_name")
    )
    return {p.model_name: (p.target_precision, f"approved threshold proposal #{p.pk}") for p in approved}


def _week(
    key: Key,
    start: date,
    counts: dict[str, dict],
    labelled: Labelled,
    appeals: dict[tuple[Key, date], Overturns],
    target: float,
) -> WeekFigures:
    rows = [r for r in labelled.get(key, []) if r[0] == start]
    action = [r for r in rows if r[1] == RoutingOutcome.AUTO_ACTION]
    clear = [r for r in rows if r[1] == RoutingOutcome.AUTO_CLEAR]
    precision = hajek_share([r[3] for r in action], [r[4] for r in action])
    miss_rate = hajek_share([r[3] for r in clear], [r[4] for r in clear])
    return WeekFigures(
        week=iso_week(start),
        week_start=start,
        decisions=counts["decisions"][(key, start)],
        auto_enforced=counts["outcome"][(key, start, RoutingOutcome.AUTO_ACTION)],
        auto_cleared=counts["outcome"][(key, start, RoutingOutcome.AUTO_CLEAR)],
        sampled_enforced=counts["sampled"][(key, start, RoutingOutcome.AUTO_ACTION)],
        sampled_cleared=counts["sampled"][(key, start, RoutingOutcome.AUTO_CLEAR)],
        precision=precision,
        miss_rate=miss_rate,
        overturns=appeals.get((key, start), Overturns(0, 0)),
        alert=precision.high is not None and precision.high < target,
    )
