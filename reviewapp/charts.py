"""Small server-rendered SVG charts. Every label is escaped; no script, no inline CSS."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, ROW, LABEL_W = 640, 22, 180
COLOURS = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None  # confidence interval, same scale as value
    high: float | None = None
    note: str = ""


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    maximum: float = 1.0,
    minimum: float = 0.0,
    percent: bool = True,
    value_text: Callable[[float], str] | None = None,
) -> SafeString:
    """Horizontal bars with optional error whiskers, labelled for screen readers via <title>.

    Values are written as percentages, or with three decimals, or by `value_text` when given.
    """
    span = (maximum - minimum) or 1.0
    plot = WIDTH - LABEL_W - 60

    def x(value: float) -> float:
        return LABEL_W + plot * (min(max(value, minimum), maximum) - minimum) / span

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {ROW * len(bars) + 30}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, bar in enumerate(bars):
        y = 10 + i * ROW
        if value_text is not None:
            shown = escape(value_text(bar.value))
        else:
            shown = f"{bar.value:.0%}" if percent else f"{bar.value:.3f}"
        parts.append(
            f'<text x="{LABEL_W - 6}" y="{y + 14}" text-anchor="end" font-size="12">{escape(bar.label[:28])}</text>'
        )
        parts.append(
            f'<rect x="{LABEL_W}" y="{y + 3}" width="{max(x(bar.value) - LABEL_W, 0):.1f}" height="14" '
            f'fill="{COLOURS[0]}"><title>{escape(bar.label)}: {shown} {escape(bar.note)}</title></rect>'
        )
        if bar.low is not None and bar.high is not None:
            parts.append(
                f'<line x1="{x(bar.low):.1f}" x2="{x(bar.high):.1f}" y1="{y + 10}" y2="{y + 10}" '
                f'stroke="#1b1f24" stroke-width="1.5"/>'
            )
        parts.append(f'<text x="{x(bar.value) + 4:.1f}" y="{y + 14}" font-size="11">{shown}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)


@dataclass(frozen=True)
class Point:
    label: str
    value: float
    low: float | None = None
    high: float | None = None


def line_chart(points: Sequence[Point], *, title: str, minimum: float = -0.2, maximum: float = 1.0) -> SafeString:
    """A line over time with a shaded confidence band; x labels are the points' labels."""
    height, left, bottom = 200, 40, 30
    plot_w, plot_h = WIDTH - left - 20, height - bottom - 10
    span = (maximum - minimum) or 1.0

    def xy(i: int, value: float) -> tuple[float, float]:
        x = left + (plot_w * i / max(len(points) - 1, 1))
        y = 10 + plot_h * (1 - (min(max(value, minimum), maximum) - minimum) / span)
        return x, y

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for tick in (minimum, 0.0, 0.5, maximum):
        _, y = xy(0, tick)
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:.1f}</text>'
        )
    band = [p for p in points if p.low is not None and p.high is not None]
    if len(band) == len(points) and points:
        upper = [xy(i, p.high) for i, p in enumerate(points)]  # type: ignore[arg-type]
        lower = [xy(i, p.low) for i, p in enumerate(points)][::-1]  # type: ignore[arg-type]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower)
        parts.append(f'<polygon points="{coords}" fill="#0969da" fill-opacity="0.15"/>')
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, p.value) for i, p in enumerate(points)))
    parts.append(f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>')
    for i, p in enumerate(points):
        x, y = xy(i, p.value)
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#0969da"><title>{escape(p.label)}: '
            f"{p.value:.3f}</title></circle>"
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" font-size="10">'
            f"{escape(p.label)}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)


def series_chart(
    series: Mapping[str, Sequence[float]], *, labels: Sequence[str], title: str, unit: str = "", every: int = 10
) -> SafeString:
    """Lines over shared time steps (e.g. rates per minute), from zero up, with a legend.

    `labels` names the steps; one in `every` is written under the axis.
    """
    height, left, top, bottom = 220, 48, 28, 30
    plot_w, plot_h = WIDTH - left - 20, height - top - bottom
    highest = max((v for values in series.values() for v in values), default=0.0)
    scale = _round_up(highest)
    steps = max(len(labels) - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return left + plot_w * i / steps, top + plot_h * (1 - value / scale)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for tick in (0.0, scale / 2, scale):
        _, y = xy(0, tick)
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick:g}{escape(unit)}</text>'
        )
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            x, _ = xy(i, 0)
            parts.append(
                f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" font-size="10">{escape(label)}</text>'
            )
    for n, (name, values) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(values)))
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
            f'<rect x="{left + 150 * n}" y="6" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + 150 * n + 14}" y="15" font-size="11">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)


def _round_up(value: float) -> float:
    """The smallest of 1, 2 or 5 × 10^k at or above `value` (1 when there is nothing to show)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)
