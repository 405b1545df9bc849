"""The default on mid-size data (issue 24): 25 to 500 labelled images per class, against a logistic
regression with its C cross-validated on the same embeddings and fitted on all training images.

Data: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``;
it is a benchmark dependency, not a test one): 10 classes, 28x28 grey pictures written as PNG.
Per seed and per size N: N training pictures per class drawn from its training set, 100 test
pictures per class from its test set (1,000, the same for every N of a seed). Model:
efficientnet_lite0. Side by side on the same split:

- zoo's default: ``zoo.finetune(model, train.csv, test=test.csv, seed=s)``;
- the reference: scikit-learn's ``LogisticRegressionCV`` (13 values of C, 10^-3..10^3, 5 stratified
  folds, refitted on all) on the card's embedding of the same pictures (zoo's frozen pass), raw and
  L2-normalised; the better of the two on test counts (the stronger reference).

    python bench/midsize.py [--sizes 25 100 500] [--seeds 0 1 2]

Measured (2 CPU cores, seeds 0-2, test accuracy mean / worst, zoo vs the reference): 25 per class
0.813 / 0.796 vs 0.799 / 0.780 (25-45 s a run); 100 per class 0.858 / 0.855 vs 0.847 / 0.834 (77-91 s);
500 per class 0.891 / 0.890 vs 0.879 / 0.875 (about 300 s, most of it the head's cross-validation
over the card's 10 cut candidates on 5,000 pictures). zoo ahead on every seed at every size.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGE = "efficientnet_lite0"
FOLDER = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def _idx(name: str) -> np.ndarray:
    with gzip.open(FOLDER / name) as handle:
        data = handle.read()
    if name.endswith("labels-idx1-ubyte.gz"):
        return np.frombuffer(data, dtype=np.uint8, offset=8)
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, 28, 28)


def write_split(folder: Path, seed: int, per_class: int) -> tuple[Path, Path]:
    from PIL import Image

    if not FOLDER.is_dir():
        raise SystemExit("Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")
    rng = np.random.default_rng(seed)
    parts = {}
    for role, prefix, count in (("train", "train", per_class), ("test", "t10k", 100)):
        images, labels = _idx(f"{prefix}-images-idx3-ubyte.gz"), _idx(f"{prefix}-labels-idx1-ubyte.gz")
        rows = []
        for label in range(10):
            for i in rng.choice(np.flatnonzero(labels == label), count, replace=False):
                path = folder / f"{role}-{i}.png"
                if not path.exists():
                    Image.fromarray(255 - images[i]).convert("RGB").save(path)
                rows.append({"path": str(path), "label": NAMES[label]})
        parts[role] = folder / f"{role}-{per_class}.csv"
        with parts[role].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label"])
            writer.writeheader()
            writer.writerows(rows)
    return parts["train"], parts["test"]


def reference(train: Path, test: Path) -> float:
    """LogisticRegressionCV on the card's embedding, raw and L2-normalised: the better test accuracy."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    import zoo
    from zoo.threads import blas_threads

    backbone = zoo.load(IMAGE, engine="auto")

    def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
        rows = list(csv.DictReader(path.open()))
        return backbone.embed([r["path"] for r in rows]).numpy(), np.array([r["label"] for r in rows])

    (x, y), (x_test, y_test) = read(train), read(test)
    best = 0.0
    with blas_threads(1):
        for scaled in (False, True):
            a, b = (x, x_test) if not scaled else (x / np.linalg.norm(x, axis=1, keepdims=True),
                                                   x_test / np.linalg.norm(x_test, axis=1, keepdims=True))
            model = LogisticRegressionCV(Cs=np.logspace(-3, 3, 13), cv=StratifiedKFold(5, shuffle=True, random_state=0),
                                         max_iter=3000).fit(a, y)
            best = max(best, float((model.predict(b) == y_test).mean()))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 100, 500])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    import zoo

    table: dict[int, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as work:
        for size in args.sizes:
            for seed in args.seeds:
                folder = Path(work) / f"s{seed}"
                folder.mkdir(exist_ok=True)
                train, test = write_split(folder, seed, size)
                started = time.perf_counter()
                run = zoo.finetune(IMAGE, str(train), test=str(test), seed=seed, out=folder / f"run-{size}",
                                   progress=False, log=lambda _: None)
                seconds = time.perf_counter() - started
                ours, theirs = run.test_accuracy, reference(train, test)
                table.setdefault(size, []).append((ours, theirs, seconds))
                print(f"{size}/class seed {seed}: zoo {ours:.3f} (cut {'+'.join(run.metrics['cut'])}, "
                      f"{run.metrics['validation']}, {seconds:.0f}s), cross-validated LR on the embedding "
                      f"{theirs:.3f}", flush=True)
    for size, rows in table.items():
        ours, theirs, seconds = zip(*rows)
        print(f"{size}/class: zoo mean {statistics.mean(ours):.3f} (worst {min(ours):.3f}), cross-validated LR mean "
              f"{statistics.mean(theirs):.3f} (worst {min(theirs):.3f}), {statistics.mean(seconds):.0f}s a run")


if __name__ == "__main__":
    main()
