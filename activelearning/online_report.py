"""What the online page shows: per model version, weekly charts with intervals and the rows behind them.

Charts are `reviewapp.charts` SVG (every label escaped, no script), inlined in the page.
"""

from __future__ import annotations

from typing import Any

from django.utils.safestring import SafeString

from reviewapp.charts import Bar, Point, bar_chart, line_chart

from .online import WeightedShare
from .services.online_metrics import ModelFigures, OnlineMetrics, calibration_label, share_label


def _share_chart(model: ModelFigures, pick: str, title: str) -> SafeString | None:
    points = []
    for week in model.weeks:
        share: WeightedShare = getattr(week, pick)
        if share.estimate is not None:
            points.append(Point(week.week, share.estimate, share.low, share.high))
    y_label = "precision" if pick == "precision" else "violation share"
    return (
        line_chart(points, title=title, minimum=0.0, maximum=1.0, y_label=y_label, x_label="ISO week")
        if points
        else None
    )


def _overturn_chart(model: ModelFigures) -> SafeString | None:
    points = []
    for week in model.weeks:
        if week.overturns.rate is not None:
            low, high = week.overturns.interval  # type: ignore[misc]
            points.append(Point(week.week, week.overturns.rate, low, high))
    title = f"{model.label}: appeal overturn rate per week, 95 % Wilson interval"
    return (
        line_chart(points, title=title, minimum=0.0, maximum=1.0, y_label="overturn rate", x_label="ISO week")
        if points
        else None
    )


def _reliability_chart(model: ModelFigures) -> SafeString | None:
    bars = [
        Bar(
            label=f"{b.low:.1f}–{b.high:.1f} (score {b.mean_score:.2f})",
            value=b.observed,
            note=f"n={b.n}, weight {b.weight:.1f}",
        )
        for b in model.calibration.bins
    ]
    title = f"{model.label}: violation share per score bin, {calibration_label(model.calibration)}"
    return bar_chart(bars, title=title, axis="violation share of the bin, %") if bars else None


def online_context(metrics: OnlineMetrics) -> dict[str, Any]:
    models = []
    for model in metrics.models:
        models.append(
            {
                "model": model,
                "weeks": [
                    {
                        "week": week,
                        "precision_label": share_label(week.precision),
                        "miss_label": share_label(week.miss_rate),
                    }
                    for week in reversed(model.weeks)  # newest first in the table
                ],
                "precision_chart": _share_chart(
                    model,
                    "precision",
                    f"{model.label}: precision of automatic actions per week (Hájek, audit-sample gold, "
                    f"95 % interval); target {model.target_precision:.2f}",
                ),
                "miss_chart": _share_chart(
                    model,
                    "miss_rate",
                    f"{model.label}: violations among automatic clears per week (Hájek, audit-sample gold, "
                    f"95 % interval)",
                ),
                "overturn_chart": _overturn_chart(model),
                "reliability_chart": _reliability_chart(model),
                "calibration_label": calibration_label(model.calibration),
            }
        )
    return {"online": metrics, "online_models": models}
