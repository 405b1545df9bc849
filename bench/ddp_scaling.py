"""torch.distributed scaling: the same fine-tuning and embedding in 1 and in 2 processes, side by side.

Each configuration runs as a fresh `zoo` command (`--nproc N` starts torch's elastic launcher),
alternating, so machine noise hits both alike; reported are samples per second of

- the unfrozen phase of `zoo finetune` (the top stage of efficientnet_lite0 learning, augmented
  digits), from the epochs' own timings in metrics.jsonl;
- the frozen pass of `zoo embed` over the 1,797 digits (an empty feature cache each time).

On CPU every rank gets cores / processes threads, so on 2 cores 2 processes should not be faster
than one (the same cores, plus gloo's all-reduce and a second copy of the model): the point of the
CPU numbers is that the split costs little. With CUDA GPUs, pass --device cuda to run one process
per GPU on NCCL (the GPU count is the most processes tried).

    python bench/ddp_scaling.py [--rounds 2] [--per-class 30] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO = shutil.which("zoo") or "zoo"
MODEL = "efficientnet_lite0"


def finetune_rate(nproc: int, per_class: int, device: str, home: Path, out: Path) -> float:
    """Training samples per second over the unfrozen epochs of one run."""
    shutil.rmtree(out, ignore_errors=True)
    command = [ZOO, "finetune", MODEL, "--data", "digits", "--per-class", str(per_class), "--validation", "split",
               "--unfreeze", "1", "--epochs", "3", "--unfreeze-epochs", "2",
               "--batch-size", "32", "--device", device, "--out", str(out), "-q"]
    subprocess.run(command + (["--nproc", str(nproc)] if nproc > 1 else []), check=True, capture_output=True,
                   env={**os.environ, "ZOO_HOME": str(home)})
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = int(json.loads((out / "config.json").read_text())["data"]["train"]["size"])
    unfrozen = [r for r in rows if r["phase"] > 0]
    return train * len(unfrozen) / sum(r["seconds"] for r in unfrozen)


def embed_rate(nproc: int, device: str, home: Path, db: Path) -> float:
    """Items per second of `zoo embed` over the digits, frozen pass included, cache empty."""
    shutil.rmtree(db, ignore_errors=True)
    shutil.rmtree(home / "features", ignore_errors=True)
    command = [ZOO, "embed", MODEL, "digits", "--db", str(db), "--device", device, "--json"]
    started = time.perf_counter()
    result = subprocess.run(command + (["--nproc", str(nproc)] if nproc > 1 else []), check=True,
                            capture_output=True, text=True, env={**os.environ, "ZOO_HOME": str(home)})
    wall = time.perf_counter() - started
    return json.loads(result.stdout)["items"] / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    counts = [1, 2]
    if args.device.startswith("cuda"):
        import torch

        counts = sorted({1, max(1, torch.cuda.device_count())})
    home = Path(os.environ.get("ZOO_HOME") or tempfile.mkdtemp(prefix="zoo-ddp-bench-"))
    work = Path(tempfile.mkdtemp(prefix="zoo-ddp-"))
    print(f"{os.cpu_count()} CPUs, device {args.device}, ZOO_HOME {home}; warming the caches", flush=True)
    finetune_rate(1, args.per_class, args.device, home, work / "warm")  # pull, compile the engine once
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for nproc in counts:
            rates.setdefault(("finetune (unfrozen, samples/s)", nproc), []).append(
                finetune_rate(nproc, args.per_class, args.device, home, work / f"run{nproc}"))
            rates.setdefault(("embed (frozen pass, items/s)", nproc), []).append(
                embed_rate(nproc, args.device, home, work / f"db{nproc}"))
    print(f"\n{'what':<34}{'processes':>10}{'median':>10}{'runs':>24}")
    for (what, nproc), values in rates.items():
        print(f"{what:<34}{nproc:>10}{statistics.median(values):>10.1f}   {', '.join(f'{v:.1f}' for v in values)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
