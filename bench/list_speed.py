"""Cold `zoo list` against `timm.list_models()`, measured side by side.

Each round runs both commands as fresh processes, interleaved, so machine noise hits both alike.
Target: `zoo list` median under 0.2 s and over 10x faster than timm's listing.

    python bench/list_speed.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "zoo list": [shutil.which("zoo") or "zoo", "list"],
    "zoo show resnet50": [shutil.which("zoo") or "zoo", "show", "resnet50"],
    "zoo show timm/...": [shutil.which("zoo") or "zoo", "show", "timm/convnext_tiny.fb_in1k"],
    "zoo list --family": [shutil.which("zoo") or "zoo", "list", "--family", "resnet", "--sort", "acc@1"],
    "zoo --help": [shutil.which("zoo") or "zoo", "--help"],
    "python -c pass": [sys.executable, "-c", "pass"],
    "timm.list_models()": [sys.executable, "-c", "import timm; timm.list_models()"],
}


def once(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    for command in COMMANDS.values():  # warm the OS file cache once
        once(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            times[name].append(once(command))
    timm_median = statistics.median(times["timm.list_models()"])
    print(f"{'command':<22}{'median s':>10}{'p90 s':>9}{'timm / this':>13}")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        print(f"{name:<22}{median:>10.3f}{p90:>9.3f}{timm_median / median:>12.1f}x")
    zoo_median = statistics.median(times["zoo list"])
    ok = zoo_median < 0.2 and timm_median / zoo_median > 10
    print(f"\nzoo list median {zoo_median:.3f} s, {timm_median / zoo_median:.1f}x faster than timm: "
          f"{'meets' if ok else 'MISSES'} the target (< 0.2 s and > 10x)")


if __name__ == "__main__":
    main()
