"""Coverage of the online precision interval (`activelearning.online.hajek_share`) on simulated audits.

    python bench/ipw_coverage.py [--draws 1000] [--seed 0]

Needs no database or broker: the estimator is plain numpy. Each design has N automatic actions in
two score bands with a known violation rate each, audited at unequal, known rates; every draw
samples the audit independently per decision (as routing does), and the interval is checked
against the true precision Σ share·truth. Designs:
- high-low (the headline): N=100,000; 60 % high-score items, 98 % violations, audited at 2 %;
  40 % low-score items, 80 % violations, audited at 10 %. True precision 0.908.
- noisy-rare: the same bands, the noisy one audited rarely (high 10 %, low 0.5 %).
- small: the high-low rates on N=2,000 decisions (about 100 audited).
Printed per design: coverage of the Hájek interval (Wilson on the design effective n), of Wilson on
Kish's n_eff around the same estimate, and of the naive interval (unweighted share, Wilson on the
audited count), with the mean error of each point estimate and the mean interval width.
Last line: the headline design's Hájek coverage against the nominal 95 %.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from activelearning.online import AuditDesign, coverage  # noqa: E402

NOMINAL = 0.95
DESIGNS = {
    "high-low": AuditDesign(n_decisions=100_000, shares=(0.6, 0.4), truth=(0.98, 0.80), rates=(0.02, 0.10)),
    "noisy-rare": AuditDesign(n_decisions=100_000, shares=(0.6, 0.4), truth=(0.98, 0.80), rates=(0.10, 0.005)),
    "small": AuditDesign(n_decisions=2_000, shares=(0.6, 0.4), truth=(0.98, 0.80), rates=(0.02, 0.10)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    headline = 0.0
    for name, design in DESIGNS.items():
        started = time.perf_counter()
        result = coverage(design, draws=args.draws, seed=args.seed)
        seconds = time.perf_counter() - started
        print(
            f"{name:10} N={design.n_decisions} shares={design.shares} truth={design.truth} rates={design.rates} "
            f"true_precision={design.true_share:.4f} draws={result['draws']}"
        )
        print(
            f"{name:10} hajek coverage={result['coverage']:.3f} bias={result['bias']:+.4f} "
            f"mean_width={result['mean_width']:.4f} | kish-wilson coverage={result['kish_coverage']:.3f} | "
            f"naive coverage={result['naive_coverage']:.3f} bias={result['naive_bias']:+.4f} seconds={seconds:.1f}"
        )
        if name == "high-low":
            headline = result["coverage"]
    print(f"coverage={headline:.3f} nominal={NOMINAL} ratio={headline / NOMINAL:.3f} reference=nominal-95%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
