"""Dependency-free SVG charts: a reliability diagram and a line chart for learning curves.

Output is a standalone SVG string (no scripts, no external fonts or links), safe to serve with a
strict Content-Security-Policy. Every label passes through `xml.sax.saxutils.escape`: class and
dataset names come from uploaded files. Each chart is an image named by its title (`role="img"`,
`<title>`) with its figures in `<desc>`, the text alternative for screen readers; the y axis of
a line chart includes zero when every value is positive, so heights compare honestly. Elements
carry classes (`chart-bg`, `chart-axis`, `series-N`…) that a page's stylesheet may recolour (the
web app's dark theme does); the presentation attributes keep the file readable on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

from activelearning.evaluation import ReliabilityBin

PALETTE = ("#1b6ac9", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#8c564b", "#4d4d4d", "#17becf", "#bcbd22")
_W, _H, _PAD = 640, 420, 56
DESC_POINTS = 12  # points of each series listed in the text alternative


def _frame(title: str, x_label: str, y_label: str, desc: str = "") -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title><desc>{escape(desc or f'{y_label} against {x_label}.')}</desc>",
        f'<rect class="chart-bg" width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<text x="{_W / 2}" y="{_H - 10}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="14" y="{_H / 2}" text-anchor="middle" transform="rotate(-90 14 {_H / 2})">{escape(y_label)}</text>',
        f'<rect class="chart-axis" x="{_PAD}" y="{_PAD}" width="{_W - 2 * _PAD}" height="{_H - 2 * _PAD}" '
        'fill="none" stroke="#767676"/>',
    ]


def _series_desc(series: Mapping[str, Sequence[tuple[float, float]]], x_label: str, y_label: str) -> str:
    """Each series' points (at most DESC_POINTS, evenly spaced, always the last) as text."""
    described = []
    for name, values in series.items():
        kept = [p for p in values if not math.isnan(p[1])]
        step = max(1, math.ceil(len(kept) / DESC_POINTS))
        shown = kept[::step] + ([kept[-1]] if kept and (len(kept) - 1) % step else [])
        points = ", ".join(f"({x:g}, {y:.3f})" for x, y in shown)
        described.append(f"{name}: {len(kept)} points ({x_label}, {y_label}): {points}")
    return "; ".join(described) + "." if described else "No data."


def _ticks(lo: float, hi: float, to_x: bool, scale: object, fmt: str, count: int = 5) -> list[str]:
    out = []
    for i in range(count + 1):
        value = lo + (hi - lo) * i / count
        pos = scale(value)  # type: ignore[operator]
        text = escape(format(value, fmt))
        if to_x:
            out.append(f'<text x="{pos:.1f}" y="{_H - _PAD + 16}" text-anchor="middle">{text}</text>')
        else:
            out.append(f'<text x="{_PAD - 6}" y="{pos + 4:.1f}" text-anchor="end">{text}</text>')
    return out


def reliability_svg(bins: Sequence[ReliabilityBin], *, title: str = "Reliability diagram") -> str:
    """Bars of observed frequency per confidence bin against the diagonal of perfect calibration."""

    def sx(v: float) -> float:
        return _PAD + v * (_W - 2 * _PAD)

    def sy(v: float) -> float:
        return _H - _PAD - v * (_H - 2 * _PAD)

    filled = [b for b in bins if b.count]
    desc = "Observed frequency per bin of predicted probability: " + (
        "; ".join(
            f"{b.lower:.1f}–{b.upper:.1f}: {b.observed_frequency:.3f} (n={b.count}, mean confidence "
            f"{b.mean_confidence:.3f})"
            for b in filled
        )
        or "no items"
    )
    parts = _frame(title, "predicted probability", "observed frequency", desc + ".")
    parts += _ticks(0, 1, True, sx, ".1f") + _ticks(0, 1, False, sy, ".1f")
    parts.append(
        f'<line class="chart-ref" x1="{sx(0)}" y1="{sy(0)}" x2="{sx(1)}" y2="{sy(1)}" stroke="#767676" '
        'stroke-dasharray="4 4"/>'
    )
    for b in bins:
        if b.count == 0:
            continue
        x, width = sx(b.lower) + 1, sx(b.upper) - sx(b.lower) - 2
        top = sy(b.observed_frequency)
        parts.append(
            f'<rect class="series-1" x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{sy(0) - top:.1f}" '
            f'fill="{PALETTE[0]}" fill-opacity="0.7"><title>n={b.count} conf={b.mean_confidence:.3f} '
            f"freq={b.observed_frequency:.3f}</title></rect>"
        )
        parts.append(
            f'<circle class="series-2" cx="{sx(b.mean_confidence):.1f}" cy="{top:.1f}" r="3" fill="{PALETTE[1]}"/>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def line_chart_svg(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    hlines: Mapping[str, float] | None = None,
) -> str:
    """One polyline per series of (x, y) points, with a legend; `hlines` draws labelled reference lines."""
    points = [p for s in series.values() for p in s if not math.isnan(p[1])]
    desc = _series_desc(series, x_label, y_label)
    if not points:
        return "\n".join([*_frame(title, x_label, y_label, desc), "</svg>"])
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + list((hlines or {}).values())
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    y_lo = min(y_lo, 0.0)  # zero is drawn as zero: a curve is never cut off above the floor of its axis
    y_lo, y_hi = (y_lo - 0.05, y_hi + 0.05) if y_hi - y_lo < 1e-9 else (y_lo, y_hi)
    fx = math.log if log_x and x_lo > 0 else float

    def sx(v: float) -> float:
        span = fx(x_hi) - fx(x_lo) or 1.0
        return _PAD + (fx(v) - fx(x_lo)) / span * (_W - 2 * _PAD)

    def sy(v: float) -> float:
        return _H - _PAD - (v - y_lo) / (y_hi - y_lo) * (_H - 2 * _PAD)

    parts = _frame(title, x_label + (" (log scale)" if log_x and x_lo > 0 else ""), y_label, desc)
    parts += _ticks(y_lo, y_hi, False, sy, ".2f")
    for x in sorted(set(xs))[:: max(1, len(set(xs)) // 8)]:
        parts.append(f'<text x="{sx(x):.1f}" y="{_H - _PAD + 16}" text-anchor="middle">{x:g}</text>')
    for name, level in (hlines or {}).items():
        parts.append(
            f'<line class="chart-ref" x1="{_PAD}" y1="{sy(level):.1f}" x2="{_W - _PAD}" y2="{sy(level):.1f}" '
            f'stroke="#767676" stroke-dasharray="4 4"/>'
        )
        parts.append(
            f'<text class="chart-muted" x="{_W - _PAD - 4}" y="{sy(level) - 4:.1f}" text-anchor="end" '
            f'fill="#595959">{escape(name)}</text>'
        )
    for i, (name, values) in enumerate(series.items()):
        colour, series_class = PALETTE[i % len(PALETTE)], f"series-{i % 6 + 1}"
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values if not math.isnan(y))
        parts.append(
            f'<polyline class="line {series_class}" points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        legend_y = _PAD + 14 + 16 * i
        swatch = f'x1="{_PAD + 8}" y1="{legend_y - 4}" x2="{_PAD + 28}" y2="{legend_y - 4}"'
        parts.append(f'<line class="{series_class}" {swatch} stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{_PAD + 32}" y="{legend_y}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
