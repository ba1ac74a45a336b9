"""Server-rendered charts: titled, with axes and units, zero drawn as zero, readable as text."""

from __future__ import annotations

import re

from reviewapp.charts import Bar, Point, bar_chart, line_chart, series_chart

TASK = "activelearning.tasks.score_pool_chunk_for_the_policy"


def test_a_bar_chart_has_a_visible_title_an_axis_with_its_unit_and_its_figures_as_text() -> None:
    html = bar_chart(
        [Bar(TASK, 0.25), Bar("reviewapp.tasks.expire_leases", 0.0)], title="Failed share", axis="share, %"
    )

    assert '<figcaption>Failed share <span class="chart-note">(share, %)</span></figcaption>' in html
    assert '<svg class="chart" role="img"' in html and "<title>Failed share</title>" in html
    assert f"<desc>share, %. {TASK}: 25%; reviewapp.tasks.expire_leases: 0%.</desc>" in html
    assert f">{TASK}</text>" in html  # the whole name, not cut off
    assert [t for t in ("0%", "20%", "40%", "60%", "80%", "100%") if f">{t}</text>" not in html] == []


def test_zero_is_drawn_as_nothing_and_small_values_at_their_true_width() -> None:
    html = bar_chart([Bar("none", 0.0), Bar("tiny", 0.01), Bar("half", 0.5)], title="t")

    bars = re.findall(r'<rect class="chart-bar"[^>]*width="([\d.]+)"[^>]*><title>(\w+)', html)
    widths = {name: float(width) for width, name in bars}
    assert "none" not in widths  # no rectangle for a zero
    assert 0 < widths["tiny"] < 10 and abs(widths["half"] - 50 * widths["tiny"]) < 3  # no minimum width


def test_axis_ticks_are_round_numbers() -> None:
    html = bar_chart([Bar("kappa", 0.4)], title="Agreement", minimum=-0.2, percent=False)
    counts = bar_chart([Bar("queue", 37)], title="Open", maximum=50, value_text=lambda v: f"{v:,.0f}")

    assert [t for t in ("-0.200", "0.000", "0.200", "1.000") if f">{t}</text>" not in html] == []
    assert [t for t in ("0", "10", "20", "30", "40", "50") if f">{t}</text>" not in counts] == []


def test_a_count_chart_of_only_zeros_draws_no_bar() -> None:
    html = bar_chart([Bar("a", 0), Bar("b", 0)], title="Open tasks", axis="open tasks", maximum=5, percent=False)

    assert 'class="chart-bar"' not in html


def test_line_and_series_charts_label_both_axes() -> None:
    line = line_chart(
        [Point("2026-W01", 0.9, 0.8, 0.95), Point("2026-W02", 0.7)], title="Precision", y_label="precision"
    )
    series = series_chart({"claims/s": [0.0, 0.5]}, labels=["-1m", "now"], title="Rates", unit="/s", x_label="minutes")

    assert ">precision</text>" in line and ">week</text>" in line and "95 % interval 0.800 to 0.950" in line
    assert ">per s</text>" in series and ">minutes</text>" in series and "<figcaption>Rates" in series
