"""Regression by transfer against the strongest simple baselines, on offline tasks built from data this
machine has, over several seeds (issue 24).

Tasks (each seed draws its own targets, and for pitch its own training clips):

- ``blur`` (images): the 189 photographs of ``--data photos`` (Debian's tuxpaint-stamps-default),
  each resized to 224 px and blurred by a Gaussian of radius r ~ U(0, 4) px; target r. Its own
  split: 93 training photos, 96 test photos.
- ``pitch`` (sounds): the spoken-digits clips (espeak-ng, ``--data spoken-digits``), target the
  pitch espeak-ng was given (25..75); 100 training clips drawn from the 48 training voices, tested
  on the 200 clips of the 10 unseen test voices.
- ``rotation`` (images): scikit-learn's digits rotated by a ~ U(-60, 60) degrees; target a; 100
  training, 300 test digits. Pooled features are made to be robust to where things are, not to
  how they are turned: the honest hard case.

For each: zoo's default (``zoo finetune MODEL --data train.csv --test test.csv --target COLUMN``),
the mean predictor and ridge on raw features (16x16 pixels; the front end's MFCC statistics for
sounds), all cross-validated and fitted the same way, test RMSE. Mean and worst over seeds; and,
on seed 0, how far ``zoo predict`` on the exported model is from PyTorch.

    python bench/regression.py [--seeds 5] [--first-seed 0] [--tasks blur,pitch,rotation]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGE = "efficientnet_lite0"


def _write(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def blur(folder: Path, seed: int) -> tuple[Path, Path, str]:
    from PIL import Image, ImageFilter

    from zoo.data.photos import ensure_photos

    photos, manifest = ensure_photos()
    rng = np.random.default_rng([seed, 1])
    parts: dict[str, list[dict]] = {"train": [], "test": []}
    for entry in manifest["photos"]:
        radius = float(rng.uniform(0, 4))
        with Image.open(photos / entry["file"]) as opened:
            picture = opened.convert("RGB")
        picture.thumbnail((224, 224))
        target = folder / f"{seed}-{Path(entry['file']).stem}.png"
        picture.filter(ImageFilter.GaussianBlur(radius)).save(target)
        parts[entry["split"]].append({"path": str(target), "radius": round(radius, 4)})
    columns = ["path", "radius"]
    return _write(folder / "train.csv", parts["train"], columns), _write(folder / "test.csv", parts["test"], columns), "radius"


def pitch(folder: Path, seed: int) -> tuple[Path, Path, str]:
    from zoo_audio.spoken import ensure_spoken_digits

    root = ensure_spoken_digits()
    clips = json.loads((root / "manifest.json").read_text())["clips"]
    train = [c for c in clips if c["path"].startswith("train/")]
    test = [c for c in clips if c["path"].startswith("test/")]
    rng = np.random.default_rng([seed, 2])
    chosen = [train[i] for i in sorted(rng.choice(len(train), 100, replace=False))]
    rows = lambda part: [{"path": str(root / c["path"]), "pitch": c["pitch"]} for c in part]  # noqa: E731
    return (_write(folder / "train.csv", rows(chosen), ["path", "pitch"]),
            _write(folder / "test.csv", rows(test), ["path", "pitch"]), "pitch")


def rotation(folder: Path, seed: int) -> tuple[Path, Path, str]:
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images
    rng = np.random.default_rng([seed, 3])
    order = rng.permutation(len(images))[:400]
    rows = []
    for n, i in enumerate(order):
        ink = np.rint(images[i] * 255 / 16).astype(np.uint8)
        picture = Image.fromarray(np.pad(255 - ink, 4, constant_values=255)).resize((64, 64), Image.BICUBIC)
        angle = float(rng.uniform(-60, 60))
        target = folder / f"{seed}-{n}.png"
        picture.rotate(angle, resample=Image.BICUBIC, fillcolor=255).convert("RGB").save(target)
        rows.append({"path": str(target), "angle": round(angle, 3)})
    return (_write(folder / "train.csv", rows[:100], ["path", "angle"]),
            _write(folder / "test.csv", rows[100:], ["path", "angle"]), "angle")


TASKS = {"blur": blur, "pitch": pitch, "rotation": rotation}


def export_gap(run_dir: Path, test: Path) -> float:
    """Seed 0: the largest |zoo predict - PyTorch| over 20 test items, in the target's standard deviations."""
    import torch

    import zoo

    run = zoo.open_run(run_dir)
    out = run_dir / "model.onnx"
    done = subprocess.run([sys.executable, "-m", "zoo", "export", str(run_dir), "--out", str(out), "-q"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    items = [row["path"] for row in list(csv.DictReader(test.open()))[:20]]
    answers = json.loads(subprocess.run([sys.executable, "-m", "zoo", "predict", str(out), *items, "--json"],
                                        capture_output=True, text=True, check=True).stdout)["predictions"]
    got = np.array([list(a["values"].values()) for a in answers])
    model = run.load_model()
    with torch.no_grad():
        batch = model.backbone.preprocess(items)
        standardised = model(batch).numpy()
    expected = standardised * np.asarray(run.task["std"]) + np.asarray(run.task["mean"])
    return float((np.abs(got - expected) / np.asarray(run.task["std"])).max()), float(np.abs(got - expected).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+SEEDS-1 (to finish a series)")
    parser.add_argument("--tasks", default="blur,pitch,rotation")
    args = parser.parse_args()
    import zoo

    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as work:
        for name in args.tasks.split(","):
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                folder = Path(work) / f"{name}-{seed}"
                folder.mkdir()
                train, test, column = TASKS[name](folder, seed)
                started = time.perf_counter()
                run = zoo.finetune(IMAGE, str(train), test=str(test), target=column, seed=seed, out=folder / "run",
                                   progress=False, log=lambda _: None)
                seconds = time.perf_counter() - started
                base = run.metrics["baseline"]
                row = {"seed": seed, "zoo": run.metrics["test"]["rmse"], "ridge": base["test"]["rmse"],
                       "mean": base["mean"]["test"]["rmse"], "r2": run.metrics["test"]["r2"], "seconds": seconds,
                       "cut": "+".join(run.metrics["cut"])}
                if seed == 0:
                    row["export_gap_std"], row["export_gap"] = export_gap(folder / "run", test)
                results.setdefault(name, []).append(row)
                print(f"{name} seed {seed}: zoo RMSE {row['zoo']:.4g} (R² {row['r2']:.3f}, cut {row['cut']}), ridge on "
                      f"raw {row['ridge']:.4g}, mean {row['mean']:.4g}, {seconds:.0f}s"
                      + (f"; export vs PyTorch max {row['export_gap']:.2g} ({row['export_gap_std']:.2g} std)"
                         if seed == 0 else ""), flush=True)
    for name, rows in results.items():
        zoo_rmse, ridge, mean = ([r[k] for r in rows] for k in ("zoo", "ridge", "mean"))
        print(f"{name}: test RMSE mean (worst) over {len(rows)} seeds: zoo {statistics.mean(zoo_rmse):.4g} "
              f"({max(zoo_rmse):.4g}), ridge on raw features {statistics.mean(ridge):.4g} ({max(ridge):.4g}), mean "
              f"predictor {statistics.mean(mean):.4g} ({max(mean):.4g}); zoo below both on "
              f"{sum(z < min(r, m) for z, r, m in zip(zoo_rmse, ridge, mean))}/{len(rows)} seeds")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
