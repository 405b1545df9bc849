"""zoo probe across the three offline EfficientNet-Lites on digits: its time, and whether its choice holds.

1. ``zoo probe efficientnet_lite0 efficientnet_lite1 efficientnet_lite2 --data digits --per-class 10``
   as a user runs it, from an empty ``ZOO_HOME`` (no compiled engine, no cached feature): seconds.
2. For each seed, the same probe with ``score_held_out=True``: every (backbone, layer) is also
   fitted on the 100 labelled images with its chosen regularisation and scored on the 1,697 others.
   The probe ranks by cross-validation only; the script reports how far the test accuracy of its
   top choice is from the best test accuracy of any (backbone, layer) (target: within 1 point),
   and the test accuracy of the card's own embedding on the top backbone, for comparison.

    python bench/probe_digits.py [--seeds 0 1 2 3 4] [--per-class 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

MODELS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def timed_cli(per_class: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoo.cli", "probe", *MODELS, "--data", "digits", "--per-class",
                        str(per_class), "--out", f"{home}/probe", "-q"], check=True, capture_output=True,
                       env={**os.environ, "ZOO_HOME": home})
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--per-class", type=int, default=10)
    args = parser.parse_args()
    print(f"zoo probe {' '.join(MODELS)} --data digits --per-class {args.per_class}, empty cache: "
          f"{timed_cli(args.per_class):.1f} s (target <= 60 s)", flush=True)
    import zoo

    gaps, chosen, best, embedding = [], [], [], []
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZOO_HOME"] = home
        for seed in args.seeds:
            report = zoo.probe(MODELS, "digits", per_class=args.per_class, seed=seed, score_held_out=True,
                               log=lambda _: None)
            top = report.best
            winner = max(report.rows, key=lambda r: r.test_accuracy)
            card_cut = next(r for r in report.rows if r.model == top.model and r.embedding)
            gaps.append(100 * (winner.test_accuracy - top.test_accuracy))
            chosen.append(top.test_accuracy)
            best.append(winner.test_accuracy)
            embedding.append(card_cut.test_accuracy)
            print(f"seed {seed}: probe's choice {top.model} {top.layer} (cv {top.accuracy:.3f}) test "
                  f"{top.test_accuracy:.4f}; best of all {winner.model} {winner.layer} test {winner.test_accuracy:.4f} "
                  f"(gap {gaps[-1]:.2f} points); the card's embedding of {top.model}: {card_cut.test_accuracy:.4f}",
                  flush=True)
    print(f"choice's test accuracy: mean {statistics.mean(chosen):.4f}, worst {min(chosen):.4f}; best possible mean "
          f"{statistics.mean(best):.4f}; gap mean {statistics.mean(gaps):.2f}, worst {max(gaps):.2f} points "
          f"(target <= 1); the card's embedding instead: mean {statistics.mean(embedding):.4f}")


if __name__ == "__main__":
    main()
