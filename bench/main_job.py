"""The README's main job from an empty ``$ZOO_HOME``: this checkout against an earlier revision, side by side.

Each round runs ``zoo finetune MODEL --data DATA --per-class N`` once with this checkout's code and
once with ``--rev``'s (exported with ``git archive`` into a temp folder and put first on
PYTHONPATH, so the installed entry points load that revision's plugins), alternating which goes
first, each in a fresh process with a fresh ``$ZOO_HOME`` (nothing cached: the engine is compiled,
the features computed). It prints each run's wall time and test accuracy, the medians and their
ratio, and the CPU it ran on (whether it has AVX-512: onnxruntime's kernels differ).

    python bench/main_job.py [--rev 0340247] [--rounds 3] [--data digits] [--per-class 10]
    python bench/main_job.py --stages        # where this checkout's run spends its time (one run)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The last commit before issue 23's work on the main job's time.
BEFORE = "0340247"


def cpu() -> str:
    name, flags = "?", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name == "?":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    kind = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({kind}), {len(os.sched_getaffinity(0))} cores"


def export(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run(code: Path | None, args: argparse.Namespace, work: Path, label: str) -> tuple[float, float | None]:
    """One run in a fresh process and ZOO_HOME; (wall seconds, test accuracy)."""
    env = dict(os.environ)
    home = Path(tempfile.mkdtemp(prefix=f"home-{label}-", dir=work))
    env["ZOO_HOME"] = str(home)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), str(code / "plugins"), env.get("PYTHONPATH", "")])
    out = Path(tempfile.mkdtemp(prefix=f"run-{label}-", dir=work)) / "run"
    command = [sys.executable, "-m", "zoo", "finetune", args.model, "--data", args.data,
               "--per-class", str(args.per_class), "--seed", str(args.seed), "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stderr[-2000:]}")
    return seconds, test_accuracy(out, done.stderr)


def test_accuracy(run: Path, printed: str) -> float | None:
    """The run's test accuracy: its report/metrics.json where the revision writes one, else its printout."""
    try:
        return float(json.loads((run / "report" / "metrics.json").read_text())["test"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        found = re.search(r"test acc(?:uracy)? (\d\.\d+)", printed)
        return float(found.group(1)) if found else None


def stages(args: argparse.Namespace) -> None:
    """One run of this checkout under cProfile: the cumulative time of each part of the recipe."""
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory() as work:
        os.environ["ZOO_HOME"] = str(Path(work) / "home")
        import zoo

        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        zoo.finetune(args.model, args.data, per_class=args.per_class, seed=args.seed, out=Path(work) / "run")
        profile.disable()
        print(f"wall {time.perf_counter() - started:.1f}s on {cpu()}")
        wanted = ("import_module", "layer_features", "compile_graph", "outputs", "choose", "baseline", "_finish",
                  "load", "make_splits", "_select", "select_cut")
        stats = pstats.Stats(profile)
        rows = [(v[3], f"{k[0].split('/')[-1]}:{k[2]}") for k, v in stats.stats.items() if k[2] in wanted]
        for seconds, name in sorted(rows, reverse=True)[:20]:
            print(f"{seconds:8.2f}s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default=BEFORE, help="the revision to compare with (default: before issue 23)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", action="store_true", help="profile one run of this checkout instead")
    args = parser.parse_args()
    if args.stages:
        stages(args)
        return
    print(f"{args.model} --data {args.data} --per-class {args.per_class} --seed {args.seed}, from an empty "
          f"ZOO_HOME, on {cpu()}")
    results: dict[str, list[tuple[float, float | None]]] = {"now": [], args.rev: []}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        before = export(args.rev, work / "before")
        for round_ in range(args.rounds):
            order = [("now", None), (args.rev, before)]
            for label, code in (order if round_ % 2 == 0 else order[::-1]):
                seconds, accuracy = run(code, args, work, label)
                results[label].append((seconds, accuracy))
                print(f"round {round_ + 1} {label:>8}: {seconds:6.1f}s, test accuracy {accuracy}", flush=True)
    now = statistics.median(s for s, _ in results["now"])
    then = statistics.median(s for s, _ in results[args.rev])
    print(f"median: this checkout {now:.1f}s, {args.rev} {then:.1f}s: {then / now:.2f}x faster")


if __name__ == "__main__":
    main()
