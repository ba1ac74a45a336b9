"""Agreement statistics and dataset readers on the full public datasets, against their time budgets.

    python bench/agreement.py [--resamples 1000]

Needs no database or broker: the agreement core and the dataset readers are plain Python + numpy.
Reads Toxic Spans and ConvAbuse from REVIEWAPP_DATA_DIR (default ../shared/data beside the clone;
`make data` fetches them); exits 1 naming that command when they are absent.

These were wall-clock asserts in tests/labeling/test_agreement.py and test_datasets.py; timing
belongs here, where a slow shared machine gives a figure instead of a red build.
- read: every record of each dataset through `read_toxic_spans` / `read_convabuse` (budget 10 s
  each), beside `csv.reader` over the same files (the floor: parsing alone);
- bootstrap: `bootstrap_ci` with --resamples resamples for Krippendorff's alpha, Fleiss' kappa and
  percent agreement on each dataset's first answers; the reference is the `krippendorff` package
  computing alpha once on the same reliability data, so `x_reference` is how many of its single
  computations one resample costs. Budget: 1000 alpha resamples over all of Toxic Spans in 10 s.
Last line: `ratio=…` = the smallest budget ÷ measured seconds (≥ 1: every figure within budget).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import krippendorff  # noqa: E402
import numpy as np  # noqa: E402

from labeling.datasets import DatasetRecord, read_convabuse, read_toxic_spans  # noqa: E402
from labeling.stats.agreement import (  # noqa: E402
    Units,
    bootstrap_ci,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
    units_from_triples,
)
from tools.data import FILES, data_dir  # noqa: E402

READ_BUDGET_SECONDS = 10.0
ALPHA_BUDGET_SECONDS = 10.0  # for 1000 resamples over all of Toxic Spans; scaled to --resamples
READERS: dict[str, Callable[..., Any]] = {"toxic-spans": read_toxic_spans, "convabuse": read_convabuse}


def timed(work: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = work(*args, **kwargs)
    return result, time.perf_counter() - started


def read_all(reader: Callable[..., Any], folder: Path) -> list[DatasetRecord]:
    return list(reader(folder))


def csv_floor(folder: Path, dataset: str) -> float:
    """Seconds to parse every pinned file of the dataset with csv.reader, keeping nothing."""

    def parse() -> None:
        for file in FILES:
            if file.dataset == dataset:
                with (folder / file.name).open(newline="", encoding="utf-8") as stream:
                    for _ in csv.reader(stream):
                        pass

    return timed(parse)[1]


def first_answer_units(records: list[DatasetRecord]) -> Units:
    triples = (
        (r.external_id, a.annotator, a.label) for r in records for a in r.annotations if not a.extra.get("repeat")
    )
    return units_from_triples(triples, on_repeat="error")


def reliability_matrix(units: Units) -> np.ndarray:
    """(max raters × units) category codes, NaN-padded: nominal alpha only sees each unit's labels."""
    categories = {c: i for i, c in enumerate(sorted({label for unit in units for label in unit.values()}))}
    data = np.full((max(len(unit) for unit in units), len(units)), np.nan)
    for j, unit in enumerate(units):
        for i, label in enumerate(unit.values()):
            data[i, j] = categories[label]
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    root = data_dir()
    missing = [f"{f.dataset}/{f.name}" for f in FILES if not (root / f.dataset / f.name).is_file()]
    if missing:
        print(f"bench/agreement.py: {', '.join(missing)} not in {root}: run `make data`", file=sys.stderr)
        return 1
    budget_ratios: list[float] = []
    for dataset, reader in READERS.items():
        records, seconds = timed(read_all, reader, root / dataset)
        floor = csv_floor(root / dataset, dataset)
        budget_ratios.append(READ_BUDGET_SECONDS / seconds)
        print(f"read {dataset:12} records={len(records)} seconds={seconds:.2f} csv_reader_seconds={floor:.2f}")
        units = first_answer_units(records)
        matrix = reliability_matrix(units)
        _, reference = timed(krippendorff.alpha, reliability_data=matrix, level_of_measurement="nominal")
        for metric in (krippendorff_alpha, fleiss_kappa, percent_agreement):
            interval, seconds = timed(bootstrap_ci, metric, units, n_resamples=args.resamples)
            point, low, high = interval
            per_resample = seconds / args.resamples
            print(
                f"bootstrap {dataset:12} {metric.__name__:18} {point:.4f} [{low:.4f}, {high:.4f}] "
                f"resamples={args.resamples} seconds={seconds:.2f} units={len(units)} "
                f"x_reference={per_resample / reference:.3f}"
            )
            if dataset == "toxic-spans" and metric is krippendorff_alpha:
                budget_ratios.append(ALPHA_BUDGET_SECONDS * args.resamples / 1000 / seconds)
        print(f"reference {dataset:12} krippendorff.alpha once: seconds={reference:.3f}")
    print(f"ratio={min(budget_ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
