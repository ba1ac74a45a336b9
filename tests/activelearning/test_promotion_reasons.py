"""Promotion reasons name each worse slice once: fields whose slices hold the same items share a line."""

from __future__ import annotations

import numpy as np

from activelearning.services.promotion import slice_deltas, worse_slice_reasons


def test_slices_holding_the_same_items_share_one_reason(settings) -> None:
    settings.AL_MIN_SLICE = 2
    settings.AL_SLICE_TOLERANCE = 0.02
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    old = y.copy()
    mine = np.array([1, 0, 1, 0, 0, 1, 0, 1])  # right on the first four items, wrong on the last four
    slices = {
        "source": ["convabuse"] * 8,  # every item: the whole held-out set
        "modality": ["text"] * 8,
        "language": [None] * 8,
        "region": ["GB"] * 4 + ["US"] * 4,
    }

    rows = slice_deltas(slices, y, old, mine, 2)
    reasons = worse_slice_reasons([r for r in rows if r["worse"]])

    assert reasons == [
        "Worse on source=convabuse, modality=text, language=unknown (n=8): macro-F1 0.500 vs 1.000, "
        "beyond the tolerance of 0.020.",
        "Worse on region=US (n=4): macro-F1 0.000 vs 1.000, beyond the tolerance of 0.020.",
    ]
    assert len(reasons) == len(set(reasons))
