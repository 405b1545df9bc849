"""The photo demo: ``zoo finetune efficientnet_lite0 --data photos`` over seeds, against the pixel baseline.

Each run is the real command in a subprocess (what a person types), into a fresh run folder; the
first on an empty ``ZOO_HOME`` (the photographs made from tuxpaint-stamps-default, the frozen
pass compiled to ONNX, every feature computed: what a fresh machine pays), the others with the
cache warm. For each seed it reads ``report/metrics.json``: the test accuracy on the 96 held-out
photographs and the baseline's (logistic regression on raw 16x16 pixels, cross-validated the same
way, scored on the same test set). Prints one line per seed, then mean / worst of both and the
times. Run it on the machine the numbers are quoted for (2 CPU cores here)::

    python bench/photos_finetune.py [--seeds 0 1 2 3 4] [--model efficientnet_lite0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def zoo_command() -> list[str]:
    exe = Path(sys.executable).with_name("zoo")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo.cli"]


def one_run(model: str, seed: int, out: Path, home: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([*zoo_command(), "finetune", model, "--data", "photos", "--seed", str(seed), "--out",
                           str(out), "-q"], env={**os.environ, "ZOO_HOME": str(home)}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"seed {seed} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    metrics = json.loads((out / "report" / "metrics.json").read_text(encoding="utf-8"))
    baseline = metrics["baseline"]["test"]["accuracy"]
    return {"seed": seed, "seconds": seconds, "test": metrics["test"]["accuracy"], "baseline": baseline,
            "cut": "+".join(metrics["cut"]), "line": metrics["baseline_line"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--keep", type=Path, help="write the run folders here (else a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="photos-bench-") as scratch:
        where = args.keep or Path(scratch)
        home = Path(scratch) / "zoo_home"  # empty: the first run pays what a fresh machine pays
        rows = []
        for seed in args.seeds:
            row = one_run(args.model, seed, where / f"{args.model}-photos-seed{seed}", home)
            rows.append(row)
            print(f"seed {seed}: test accuracy {row['test']:.3f}, baseline {row['baseline']:.3f}, cut {row['cut']}, "
                  f"{row['seconds']:.1f} s{' (empty cache)' if len(rows) == 1 else ''}", flush=True)
    tests, bases = [r["test"] for r in rows], [r["baseline"] for r in rows]
    warm = [r["seconds"] for r in rows[1:]]
    print(f"transfer: test accuracy mean {statistics.mean(tests):.3f} worst {min(tests):.3f}")
    print(f"baseline (raw pixels): mean {statistics.mean(bases):.3f} worst {min(bases):.3f}")
    print(f"time: {rows[0]['seconds']:.1f} s from an empty cache"
          + (f", {statistics.mean(warm):.1f} s mean with the cache warm" if warm else "")
          + f" ({os.cpu_count()} CPU cores)")
    print(f"seed {rows[0]['seed']}'s line: {rows[0]['line']}")


if __name__ == "__main__":
    main()
