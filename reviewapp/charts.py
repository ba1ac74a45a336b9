"""Small server-rendered SVG charts. Every label is escaped; no script, no inline CSS.

Each chart is a `<figure class="chart-figure">`: a visible `<figcaption>` (the title, and the axis
and unit it is read on), the SVG (`role="img"`, named by its `<title>`, with the figures behind it
in `<desc>` for screen readers), and axes with labelled ticks. Bars start at zero and have no
minimum width: a zero is drawn as nothing on the baseline, with its value written beside it.
Colours are classes (`chart-bar`, `series-N`…) that app.css maps to the theme's tokens; the
presentation attributes beside them keep a chart readable where that stylesheet is absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
COLOURS = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e")
LABEL_CHARS = 90  # a bar's label is written above it, in full up to this length (the tooltip has all of it)
DESC_ITEMS = 60  # figures listed in a chart's text alternative


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None  # confidence interval, same scale as value
    high: float | None = None
    note: str = ""


def _figure(title: str, axis: str, svg: str) -> SafeString:
    caption = f"{escape(title)}" + (f' <span class="chart-note">({escape(axis)})</span>' if axis else "")
    return mark_safe(f'<figure class="chart-figure"><figcaption>{caption}</figcaption>{svg}</figure>')  # noqa: S308


def _open_svg(height: float, title: str, desc: str) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height:.0f}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="sans-serif"><title>{escape(title)}</title><desc>{escape(desc)}</desc>'
    )


def _listing(pairs: Sequence[tuple[str, str]]) -> str:
    shown = "; ".join(f"{label}: {value}" for label, value in pairs[:DESC_ITEMS])
    more = f"; and {len(pairs) - DESC_ITEMS} more" if len(pairs) > DESC_ITEMS else ""
    return shown + more + "." if pairs else "No data."


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    axis: str = "",
    maximum: float = 1.0,
    minimum: float = 0.0,
    percent: bool = True,
    value_text: Callable[[float], str] | None = None,
) -> SafeString:
    """Horizontal bars with optional error whiskers, each labelled above its bar, on a ticked axis.

    `axis` names what the bars measure and its unit (e.g. "share of runs, %"); the default says
    percent or plain value. Values are written as percentages, or with three decimals, or by
    `value_text` when given. Bars grow from max(minimum, 0) (the baseline), so a negative value
    (kappa can be below zero) is drawn to the left of it.
    """
    fmt = value_text or ((lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:.3f}"))
    axis = axis or ("percent" if percent else "value")
    span = (maximum - minimum) or 1.0
    left, right, row, top = 12, WIDTH - 70, 34, 8
    height = top + row * len(bars) + 44

    def x(value: float) -> float:
        return left + (right - left) * (min(max(value, minimum), maximum) - minimum) / span

    base = x(max(minimum, 0.0))
    parts = [_open_svg(height, title, f"{axis}. " + _listing([(b.label, fmt(b.value)) for b in bars]))]
    bottom = top + row * len(bars)
    intervals = tick_intervals(span)
    for i in range(intervals + 1):
        tick = round(minimum + span * i / intervals, 9) + 0.0  # no "-0.000" from float error
        parts.append(
            f'<line class="chart-grid" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top}" y2="{bottom}" '
            'stroke="#d0d7de"/>'
            f'<text x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle" font-size="11">{escape(fmt(tick))}</text>'
        )
    parts.append(
        f'<text x="{(left + right) / 2:.0f}" y="{bottom + 36}" text-anchor="middle" font-size="12">'
        f"{escape(axis)}</text>"
    )
    for i, bar in enumerate(bars):
        y = top + i * row
        shown = escape(fmt(bar.value))
        label = bar.label if len(bar.label) <= LABEL_CHARS else bar.label[: LABEL_CHARS - 1] + "…"
        parts.append(f'<text x="{left}" y="{y + 12}" font-size="12">{escape(label)}</text>')
        end = x(bar.value)
        if end != base:  # a zero is the baseline itself: no rectangle at all
            parts.append(
                f'<rect class="chart-bar" x="{min(base, end):.1f}" y="{y + 16}" width="{abs(end - base):.1f}" '
                f'height="12" fill="{COLOURS[0]}"><title>{escape(bar.label)}: {shown} {escape(bar.note)}</title></rect>'
            )
        if bar.low is not None and bar.high is not None:
            parts.append(
                f'<line class="chart-whisker" x1="{x(bar.low):.1f}" x2="{x(bar.high):.1f}" y1="{y + 22}" '
                f'y2="{y + 22}" stroke="#1f2328" stroke-width="1.5"/>'
            )
        value_x = max(end, x(bar.high) if bar.high is not None else end)
        parts.append(f'<text x="{value_x + 4:.1f}" y="{y + 27}" font-size="11">{shown}</text>')
    parts.append(
        f'<line class="chart-axis" x1="{base:.1f}" x2="{base:.1f}" y1="{top}" y2="{bottom}" stroke="#59636e"/></svg>'
    )
    return _figure(title, axis, "".join(parts))


@dataclass(frozen=True)
class Point:
    label: str
    value: float
    low: float | None = None
    high: float | None = None


def line_chart(
    points: Sequence[Point],
    *,
    title: str,
    minimum: float = -0.2,
    maximum: float = 1.0,
    y_label: str = "value",
    x_label: str = "week",
) -> SafeString:
    """A line over time with a shaded confidence band; x labels are the points' labels."""
    height, left, top, bottom = 230, 56, 10, 48
    plot_w, plot_h = WIDTH - left - 20, height - top - bottom
    span = (maximum - minimum) or 1.0

    def xy(i: int, value: float) -> tuple[float, float]:
        x = left + (plot_w * i / max(len(points) - 1, 1))
        y = top + plot_h * (1 - (min(max(value, minimum), maximum) - minimum) / span)
        return x, y

    desc = f"{y_label} by {x_label}. " + _listing([(p.label, _interval_text(p)) for p in points])
    parts = [_open_svg(height, title, desc)]
    for tick in sorted({minimum, 0.0, 0.5, maximum}):
        if minimum <= tick <= maximum:
            _, y = xy(0, tick)
            parts.append(
                f'<line class="{"chart-axis" if tick == 0 else "chart-grid"}" x1="{left}" x2="{WIDTH - 20}" '
                f'y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
                f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:.1f}</text>'
            )
    parts.append(_axis_titles(height, left, top, plot_h, x_label, y_label))
    band = [p for p in points if p.low is not None and p.high is not None]
    if len(band) == len(points) and points:
        upper = [xy(i, p.high) for i, p in enumerate(points)]  # type: ignore[arg-type]
        lower = [xy(i, p.low) for i, p in enumerate(points)][::-1]  # type: ignore[arg-type]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower)
        parts.append(f'<polygon class="chart-band" points="{coords}" fill="#0969da" fill-opacity="0.15"/>')
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, p.value) for i, p in enumerate(points)))
    parts.append(f'<polyline class="line series-1" points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>')
    every = max(1, math.ceil(len(points) / 12))
    for i, p in enumerate(points):
        x, y = xy(i, p.value)
        parts.append(
            f'<circle class="series-1" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#0969da"><title>{escape(p.label)}: '
            f"{escape(_interval_text(p))}</title></circle>"
        )
        if i % every == 0 or i == len(points) - 1:
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="10">'
                f"{escape(p.label)}</text>"
            )
    parts.append("</svg>")
    return _figure(title, f"{y_label} by {x_label}", "".join(parts))


def series_chart(
    series: Mapping[str, Sequence[float]],
    *,
    labels: Sequence[str],
    title: str,
    unit: str = "",
    every: int = 10,
    y_label: str = "",
    x_label: str = "",
) -> SafeString:
    """Lines over shared time steps (e.g. rates per minute), from zero up, with a legend.

    `labels` names the steps; one in `every` is written under the axis.
    """
    height, left, top, bottom = 250, 64, 28, 48
    plot_w, plot_h = WIDTH - left - 20, height - top - bottom
    highest = max((v for values in series.values() for v in values), default=0.0)
    scale = round_up(highest)
    steps = max(len(labels) - 1, 1)
    y_label = y_label or (f"per {unit.lstrip('/')}" if unit else "value")

    def xy(i: int, value: float) -> tuple[float, float]:
        return left + plot_w * i / steps, top + plot_h * (1 - value / scale)

    desc = f"{y_label} by {x_label or 'step'}. " + "; ".join(
        f"{name}: highest {max(values, default=0):.3g}{unit}, latest {values[-1] if values else 0:.3g}{unit}"
        for name, values in series.items()
    )
    parts = [_open_svg(height, title, desc)]
    for tick in (0.0, scale / 2, scale):
        _, y = xy(0, tick)
        parts.append(
            f'<line class="{"chart-axis" if tick == 0 else "chart-grid"}" x1="{left}" x2="{WIDTH - 20}" '
            f'y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:g}{escape(unit)}</text>'
        )
    parts.append(_axis_titles(height, left, top, plot_h, x_label, y_label))
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            x, _ = xy(i, 0)
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="10">{escape(label)}</text>'
            )
    for n, (name, values) in enumerate(series.items()):
        colour, series_class = COLOURS[n % len(COLOURS)], f"series-{n % len(COLOURS) + 1}"
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(values)))
        parts.append(
            f'<polyline class="line {series_class}" points="{line}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
            f'<rect class="{series_class}" x="{left + 200 * n}" y="6" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + 200 * n + 14}" y="15" font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return _figure(title, f"{y_label} by {x_label}" if x_label else y_label, "".join(parts))


def _axis_titles(height: float, left: float, top: float, plot_h: float, x_label: str, y_label: str) -> str:
    middle = top + plot_h / 2
    x_title = (
        f'<text x="{(left + WIDTH - 20) / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="12">'
        f"{escape(x_label)}</text>"
        if x_label
        else ""
    )
    return (
        f'<text x="12" y="{middle:.0f}" text-anchor="middle" font-size="12" transform="rotate(-90 12 {middle:.0f})">'
        f"{escape(y_label)}</text>{x_title}"
    )


def _interval_text(point: Point) -> str:
    if point.low is not None and point.high is not None:
        return f"{point.value:.3f} (95 % interval {point.low:.3f} to {point.high:.3f})"
    return f"{point.value:.3f}"


def tick_intervals(span: float) -> int:
    """How many equal steps divide an axis of length `span` into round ticks (1 → 0.2 steps, 2 → 0.5…)."""
    if span <= 0:
        return 4
    leading = round(span / 10 ** math.floor(math.log10(span)), 6)
    return {1.0: 5, 1.2: 6, 2.0: 4, 2.5: 5, 5.0: 5}.get(leading, 4)


def round_up(value: float) -> float:
    """The smallest of 1, 2 or 5 × 10^k at or above `value` (1 when there is nothing to show)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)
