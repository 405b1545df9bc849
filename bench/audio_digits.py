"""Spoken digits, 10 labelled clips per class, test voices never heard in training: transfer from
ImageNet (efficientnet_lite0 on log-mel pictures) against the MFCC + logistic-regression baseline
the run reports on the same split, over several seeds; then the exported model's `zoo predict`
(numpy and onnxruntime only) against PyTorch's class on every test clip.

    python bench/audio_digits.py --seeds 0 1 2            # the acceptance numbers (about 8 min a seed on 2 cores)
    python bench/audio_digits.py --seeds 0 --unfreeze 0   # the head alone on frozen features

Prints one line per seed and the mean and worst of both; ``--json FILE`` keeps everything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def agreement(run_dir: Path, out: Path) -> dict:
    """Exported model vs PyTorch on the run's test clips: the share with the same class."""
    import subprocess
    import sys

    import torch

    import zoo
    from zoo.data import make_splits
    from zoo.runs.options import FinetuneOptions

    zoo.export(run_dir, out=out, log=lambda text: None)
    run = zoo.open_run(run_dir)
    options = FinetuneOptions.from_dict(run.config)
    splits = make_splits(options.data.data, modality="image", per_class=options.data.per_class, seed=options.seed)
    clips = [str(e.item) for e in splits.test.examples]
    script = ("import sys, json, zoo.runtime as r\n"
              f"p = r.predict({str(out)!r}, json.load(sys.stdin), top_k=1)\n"
              "assert 'torch' not in sys.modules\n"
              "print(json.dumps([x.top[0][0] for x in p.predictions]))\n")
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(clips), capture_output=True, text=True,
                          check=True)
    onnx = json.loads(done.stdout)
    model = run.load_model()
    labels = []
    with torch.no_grad():
        for start in range(0, len(clips), 32):
            batch = model.backbone.preprocess(clips[start:start + 32])
            labels += [run.classes[i] for i in model(batch).argmax(1).tolist()]
    same = sum(a == b for a, b in zip(onnx, labels))
    truth = [run.classes[e.label] for e in splits.test.examples]
    return {"clips": len(clips), "same_class": same, "agreement": same / len(clips),
            "onnx_accuracy": sum(a == t for a, t in zip(onnx, truth)) / len(clips)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--unfreeze", default=None, help="as zoo finetune --unfreeze (default: auto)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--runs", type=Path, help="keep the runs here (RUNS/seedN); a finished run there is reused "
                                                  "(default: a temporary folder)")
    args = parser.parse_args()
    import zoo

    options = {} if args.unfreeze is None else {"unfreeze": args.unfreeze if args.unfreeze in ("all", "auto")
                                                 else int(args.unfreeze)}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs or Path(scratch)
        for seed in args.seeds:
            started = time.perf_counter()
            folder = runs / f"seed{seed}"
            reused = (folder / "checkpoints" / "final.pt").is_file()
            if reused:
                run = zoo.open_run(folder)
                print(f"seed {seed}: reusing the finished run {folder}", flush=True)
            else:
                run = zoo.finetune("efficientnet_lite0", "spoken-digits", per_class=args.per_class, seed=seed,
                                   out=folder, progress=False, log=lambda text: None, **options)
            seconds = time.perf_counter() - started
            m = run.metrics
            checked = agreement(run.dir, Path(scratch) / f"seed{seed}.onnx")
            row = {"seed": seed, "transfer": m["test"]["accuracy"], "baseline": m["baseline"]["test"]["accuracy"],
                   "baseline_name": m["baseline"]["name"], "test_clips": m["test"]["n"],
                   "seconds": None if reused else round(seconds),
                   "schedule": m.get("cv", {}).get("schedule"), "cut": m.get("cut"), **checked}
            rows.append(row)
            took = "reused" if reused else f"{row['seconds']} s"
            print(f"seed {seed}: transfer {row['transfer']:.3f}  MFCC+LR {row['baseline']:.3f}  "
                  f"predict = torch on {row['same_class']}/{row['clips']} test clips  ({took})", flush=True)
    for key in ("transfer", "baseline", "agreement"):
        values = [r[key] for r in rows]
        print(f"{key:>9}: mean {statistics.mean(values):.3f}  worst {min(values):.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
