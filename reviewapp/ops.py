"""The operations dashboard at /ops/: the figures /metrics exports, as charts, for leads and staff.

Queue gauges, the work counters, the handle-time histogram, Celery task outcomes, the model in
use and round timings are read through the collectors Prometheus scrapes (`metrics.collectors()`),
so this page and the alerts built on /metrics never disagree. Claims and submissions per second
over the last hour come from the audit log: every process writes it, and it keeps the history that
counters (totals since they were created) do not. The page polls its `figures` region with htmx;
without JavaScript, reloading the page shows the same.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .access import is_lead
from .charts import Bar, bar_chart, round_up, series_chart
from .metrics import HANDLE_TIME_BUCKETS, collectors

ACTIVITY_MINUTES = 60
RATE_WINDOW_MINUTES = 5  # the headline claims/s and submissions/s
POLL_SECONDS = 15
# Audit actions counted as one claim and one accepted submission.
ACTIVITY_ACTIONS = {"task.claimed": "claims", "annotation.submitted": "submissions"}


@require_GET
@login_required
def ops_dashboard(request: HttpRequest) -> HttpResponse:
    """The whole page, or for htmx polls only its `figures` region."""
    if not (is_lead(request.user) or request.user.is_staff):
        raise PermissionDenied("Policy leads and staff only.")
    template = "reviewapp/ops.html" + ("#figures" if request.headers.get("HX-Request") else "")
    return render(request, template, ops_context())


@dataclass
class QueueFigures:
    slug: str
    depth: int = 0
    oldest_seconds: float = 0.0
    sla_breaches: int = 0
    claims: int = 0
    submissions: dict[str, int] = field(default_factory=dict)

    @property
    def oldest(self) -> str:
        return duration_text(self.oldest_seconds) if self.depth else "—"


@dataclass
class PolicyFigures:
    """The model a policy's routing uses, and its latest finished active-learning round."""

    policy: str
    model: str = ""
    round_status: str = ""
    round_seconds: float | None = None
    round_finished_at: datetime | None = None
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def round_took(self) -> str:
        return duration_text(self.round_seconds) if self.round_seconds is not None else "—"


def ops_context() -> dict[str, Any]:
    families = {family.name: family for collector in collectors(for_ops=True) for family in collector.collect()}  # type: ignore[attr-defined]
    queues = _queues(families)
    activity = activity_per_minute(minutes=ACTIVITY_MINUTES)
    handle_times = _handle_times(families["reviewapp_handle_time_seconds"])
    tasks = _celery_outcomes(families["reviewapp_celery_tasks"])
    policies = _policies(families)
    return {
        "poll_seconds": POLL_SECONDS,
        "queues": queues,
        "rates": {name: sum(values[-RATE_WINDOW_MINUTES:]) / RATE_WINDOW_MINUTES for name, values in activity.items()},
        "rate_window": RATE_WINDOW_MINUTES,
        "activity_chart": series_chart(
            {"claims/s": activity["claims"], "accepted submissions/s": activity["submissions"]},
            labels=[f"-{ACTIVITY_MINUTES - i}m" for i in range(ACTIVITY_MINUTES - 1)] + ["now"],
            title=f"Claims and accepted submissions per second, per minute, last {ACTIVITY_MINUTES} minutes",
            unit="/s",
            y_label="events per second",
            x_label="minutes before now",
        ),
        "depth_chart": _count_chart([(q.slug, q.depth) for q in queues], "Open tasks per queue", "open tasks"),
        # An empty queue has no oldest task: its age is drawn as zero, whatever the gauge last held.
        "age_chart": _count_chart(
            [(q.slug, q.oldest_seconds if q.depth else 0.0) for q in queues],
            "Age of the oldest open task per queue",
            "age, from seconds to days",
            text=duration_text,
        ),
        "breach_chart": _count_chart(
            [(q.slug, q.sla_breaches) for q in queues], "Open tasks past their SLA per queue", "open tasks past SLA"
        ),
        "handle_times": handle_times,
        "handle_time_chart": bar_chart(
            [Bar(label, share) for label, _, share in handle_times["buckets"]],
            title="Share of answers by handle time",
            axis="share of answers, %",
        ),
        "tasks": tasks,
        "task_chart": bar_chart(
            [Bar(t["task"], t["failure_share"], note="failed or retried") for t in tasks],
            title="Failed or retried share of Celery task runs",
            axis="share of the task's runs that failed or were retried, %",
        ),
        "policies": policies,
        "round_charts": [
            _count_chart(
                list(p.stages.items()), f"Stages of the latest {p.policy} round", "time taken", text=duration_text
            )
            for p in policies
            if p.stages
        ],
        "updated_at": datetime.now(UTC),
    }


def activity_per_minute(*, minutes: int) -> dict[str, list[float]]:
    """Claims and accepted submissions per second in each of the last `minutes` whole minutes.

    Minutes are counted back from the database clock, which stamps the audit log, so the last
    value covers the 60 seconds before now. Reads the audit log's time index.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT action, floor(extract(epoch FROM statement_timestamp() - occurred_at) / 60)::int, count(*)
            FROM reviewapp_auditevent
            WHERE occurred_at > statement_timestamp() - make_interval(mins => %s) AND action = ANY(%s)
            GROUP BY 1, 2
            """,
            [minutes, list(ACTIVITY_ACTIONS)],
        )
        rows = cursor.fetchall()
    series = {name: [0.0] * minutes for name in ACTIVITY_ACTIONS.values()}
    for action, minutes_ago, n in rows:
        if 0 <= minutes_ago < minutes:
            series[ACTIVITY_ACTIONS[action]][minutes - 1 - minutes_ago] = n / 60
    return series


def _queues(families: dict[str, Any]) -> list[QueueFigures]:
    queues: dict[str, QueueFigures] = {}

    def of(sample: Any) -> QueueFigures:
        slug = sample.labels["queue"]
        return queues.setdefault(slug, QueueFigures(slug))

    for sample in families["reviewapp_queue_depth"].samples:
        of(sample).depth = int(sample.value)
    for sample in families["reviewapp_queue_oldest_task_age_seconds"].samples:
        of(sample).oldest_seconds = sample.value
    for sample in families["reviewapp_queue_sla_breaches"].samples:
        of(sample).sla_breaches = int(sample.value)
    for sample in families["reviewapp_claims"].samples:
        of(sample).claims = int(sample.value)
    for sample in families["reviewapp_submissions"].samples:
        of(sample).submissions[sample.labels["outcome"]] = int(sample.value)
    return sorted(queues.values(), key=lambda q: q.slug)


def _handle_times(family: Any) -> dict[str, Any]:
    """Per-bucket counts and shares of the cumulative histogram, with its count and mean."""
    values = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    total = values.get(("reviewapp_handle_time_seconds_count", None), 0)
    buckets, below, lower = [], 0.0, 0
    for bound in (*HANDLE_TIME_BUCKETS, math.inf):
        le = "+Inf" if bound == math.inf else str(bound)
        cumulative = values.get(("reviewapp_handle_time_seconds_bucket", le), 0)
        label = f"over {lower} s" if bound == math.inf else f"{lower}–{bound} s"
        buckets.append((label, int(cumulative - below), (cumulative - below) / total if total else 0.0))
        below, lower = cumulative, bound
    mean = values.get(("reviewapp_handle_time_seconds_sum", None), 0) / total if total else None
    return {"count": int(total), "mean_seconds": mean, "buckets": buckets}


def _celery_outcomes(family: Any) -> list[dict[str, Any]]:
    """Runs per task and state, for tasks that ran; most failures first."""
    runs: dict[str, dict[str, int]] = defaultdict(dict)
    for sample in family.samples:
        runs[sample.labels["task"]][sample.labels["state"]] = int(sample.value)
    rows = []
    for task, states in runs.items():
        total = sum(states.values())
        if total:
            bad = states.get("failure", 0) + states.get("retry", 0)
            rows.append({"task": task, **states, "total": total, "failure_share": bad / total})
    return sorted(rows, key=lambda row: (-row["failure_share"], row["task"]))


def _policies(families: dict[str, Any]) -> list[PolicyFigures]:
    policies: dict[str, PolicyFigures] = {}

    def of(sample: Any) -> PolicyFigures:
        return policies.setdefault(sample.labels["policy"], PolicyFigures(sample.labels["policy"]))

    for sample in families["reviewapp_model_in_use_info"].samples:
        of(sample).model = f"{sample.labels['model']}@{sample.labels['version']}"
    for sample in families["reviewapp_al_round_duration_seconds"].samples:
        of(sample).round_seconds = sample.value
    for sample in families["reviewapp_al_round_finished_timestamp_seconds"].samples:
        figures = of(sample)
        figures.round_status = sample.labels["status"]
        figures.round_finished_at = datetime.fromtimestamp(sample.value, UTC)
    for sample in families["reviewapp_al_round_stage_seconds"].samples:
        of(sample).stages[sample.labels["stage"]] = sample.value
    return sorted(policies.values(), key=lambda p: p.policy)


def _count_chart(rows: list[tuple[str, float]], title: str, axis: str, text: Any = None) -> Any:
    """Bars from zero to a round maximum (counts are whole numbers: ticks too)."""
    highest = max((value for _, value in rows), default=0)
    return bar_chart(
        [Bar(label, value) for label, value in rows],
        title=title,
        axis=axis,
        maximum=round_up(max(highest, 4 if text is None else 1)),
        value_text=text or (lambda value: f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"),
    )


def duration_text(seconds: float) -> str:
    """A duration as people read it on a dashboard: 42 s, 7.5 min, 3.2 h, 2.1 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
