"""int8 vs fp32 accuracy on the README's digits fine-tune, over several seeds, and their speed.

Per seed: ``zoo.finetune("efficientnet_lite0", "digits", per_class=10, seed=SEED)`` (the README's
demo run: 8 train + 2 validation images per class, every other image is the test set), then
``zoo.export(run, quantize="int8")`` exactly as ``zoo export RUN --quantize int8`` runs it, with
``max_drop`` lifted so every seed reports. The export's own check compares fp32 and int8 on the
run's held-out data (validation + test: 1,717 images); this script prints that record and both
exports' wall time (the int8 one includes that check), and times the exported fp32 and int8 files
side by side on one image (onnxruntime, 1 thread, zoo bench's alternating blocks, medians).

    python bench/int8_digits.py [--seeds 0 1 2] [--runs 60]

Measured: see the closing note of issue 5 and README "Export".
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
from pathlib import Path

import zoo
from zoo.benchmark import interleaved
from zoo.export import read_info
from zoo.runtime import open_model


def _latency(paths: dict[str, Path], item: object, runs: int) -> dict[str, float]:
    models = {name: open_model(path, provider="cpu", threads=1) for name, path in paths.items()}
    calls = {name: functools.partial(m.run, m.encode([item])) for name, m in models.items()}
    times = interleaved(calls, runs, warmup=3)  # zoo bench's own timing: alternating blocks
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    drops, agreements = [], []
    image = _an_image()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            run = zoo.finetune("efficientnet_lite0", "digits", per_class=10, seed=seed, out=Path(tmp) / f"seed{seed}",
                               progress=False, log=lambda _: None)
            fp32 = zoo.export(run.dir, log=lambda _: None)
            int8 = zoo.export(run.dir, quantize="int8", max_drop=100, log=lambda _: None)
            e = read_info(int8.path).quantization["evaluation"]
            speed = _latency({"fp32": fp32.path, "int8": int8.path}, image, args.runs)
            drops.append(e["drop_points"])
            agreements.append(e["top1_agreement"])
            print(f"seed {seed}: {e['samples']} held-out images ({e['set']}): fp32 {e['fp32_accuracy']:.4f} "
                  f"int8 {e['int8_accuracy']:.4f} drop {e['drop_points']:+.2f} points, top-1 agreement "
                  f"{e['top1_agreement']:.4f}; export fp32 {fp32.seconds:.0f} s, int8 {int8.seconds:.0f} s; "
                  f"batch 1, 1 thread: fp32 {speed['fp32']:.2f} ms, int8 {speed['int8']:.2f} ms "
                  f"({speed['fp32'] / speed['int8']:.2f}x)", flush=True)
    print(f"mean drop {statistics.mean(drops):+.2f} points (worst {max(drops):+.2f}), mean agreement "
          f"{statistics.mean(agreements):.4f}")


def _an_image() -> object:
    from zoo.data import make_splits

    return make_splits("digits", modality="image", per_class=10, seed=0).test.examples[0].item


if __name__ == "__main__":
    main()
