"""Text with few or no labels on BBC News: zero-shot, linear models on frozen embeddings, zoo's head,
and label-aware rules, at 0, 2, 5, 10 and 20 labels per class.

Data as bench/finetune_text.py (the first 64 words of each distinct BBC News article, 5 topics);
for each seed, per class, N labelled texts and 100 test texts (the same test texts for every N
of a seed). Model: all-minilm-l6-v2-offline. Methods, side by side on the same split:

- zero-shot: ``zoo.zero_shot(model, "business,entertainment,politics,sport,tech")`` with the
  default templates (no labelled text at all; the same at every N);
- tuned LR: scikit-learn GridSearchCV over C in 10^-3..10^3 (13 values, k = min(5, N) stratified
  folds) on the frozen embeddings, fitted on all N per class;
- zoo head (no prior): ``zoo.finetune(model, train.csv, test=test.csv, unfreeze=0,
  label_prior="none")``: the cross-validated, L2-normalised logistic regression on all labelled
  texts (issue 11);
- zoo head + label prior: the same with ``label_prior="always"``: the head mixed with the class
  names' zero-shot classifier, the weight chosen on folds (zoo.train.prior; the default ``auto``
  uses it up to 5 per class, from this measurement);
- other label-aware rules, measured to choose one: "prompts as examples" (the zero-shot
  prototypes added to the labelled set as one more example per class, then zoo's cross-validated
  regression) and "prior mix" (a fixed half-and-half mean of zero-shot's and the regression's
  probabilities);
- partial fine-tuning: ``zoo.finetune(..., recipe="gradual", unfreeze=2)`` (the top two layers,
  the schedule chosen on folds and kept only when it beats the head there; label prior as the
  default ``auto``);
- full fine-tuning: the same with ``unfreeze="all"`` and ``unfreeze_epochs=2`` (every layer and
  the embeddings, one more each phase: 7 phases; 2 epochs each bound its time);
- contrastive: ``zoo.finetune(..., recipe="contrastive")``: the encoder trained on pairs of the
  labelled texts (``--pairs auto``), then the cross-validated head;
- the default: ``zoo.finetune(...)`` with every option left to ``auto`` (what a user gets).

The fine-tuning columns cost minutes per run on 2 cores; ``--methods`` picks columns.

    python bench/text_fewshot.py [--seeds 0 1 2 3 4] [--sizes 2 5 10 20] [--methods head prior partial full contrastive default]

Prints one line per (seed, N) and a table of mean and worst test accuracy per method and N.

Measured on 2 CPU cores (seeds 0-4; `--methods head prior contrastive`, 30 minutes with other jobs
running), mean / worst: zero-shot 0.792 / 0.782; contrastive 0.737 / 0.706, 0.900 / 0.856, 0.929 /
0.904, 0.948 / 0.938 at 2 / 5 / 10 / 20 per class; head + label prior 0.808 / 0.782, 0.850 /
0.768, 0.894 / 0.866, 0.932 / 0.912; head 0.656, 0.821, 0.880, 0.927; tuned LR 0.658, 0.805,
0.870, 0.919; prior mix 0.830, 0.866, 0.904, 0.902; prompts as examples 0.783, 0.860, 0.896,
0.932. `--recipe auto` follows it: the head with the label prior below 5 per class, contrastive
from 5 to 25.
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

MODEL = "all-minilm-l6-v2-offline"
#: the zoo runs, by --methods key: (column, options of zoo.finetune)
RUNS = {
    "head": ("zoo head (no prior)", {"recipe": "gradual", "unfreeze": 0, "label_prior": "none"}),
    "prior": ("zoo head + label prior", {"recipe": "gradual", "unfreeze": 0, "label_prior": "always"}),
    "partial": ("partial fine-tuning", {"recipe": "gradual", "unfreeze": 2}),
    "full": ("full fine-tuning", {"recipe": "gradual", "unfreeze": "all", "unfreeze_epochs": 2}),
    "contrastive": ("contrastive", {"recipe": "contrastive"}),
    "default": ("zoo default (auto)", {}),
}
LABELS = "business,entertainment,politics,sports,tech"  # the corpus's folder names, as a user would give them


def tuned_lr(x, y, x_test):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    k = min(5, int(np.bincount(y).min()))
    search = GridSearchCV(LogisticRegression(max_iter=5000), {"C": np.logspace(-3, 3, 13)},
                          cv=StratifiedKFold(k, shuffle=True, random_state=0))
    search.fit(x, y)
    return search.predict_proba(x_test)


def main() -> None:
    import numpy as np

    import zoo
    from finetune_text import load_bbc_news, write_csv
    from zoo.fitting.linear import cross_validate, fit_probe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 10, 20])
    parser.add_argument("--methods", nargs="+", default=list(RUNS),
                        help=f"zoo runs to make ({', '.join(RUNS)}); the linear models always run")
    args = parser.parse_args()
    rows, _ = load_bbc_news(64)
    classes = sorted({label for _, label in rows})
    texts = [t for t, _ in rows]
    labels = np.array([classes.index(y) for _, y in rows])
    home = tempfile.mkdtemp()
    os.environ.setdefault("ZOO_HOME", home)
    model = zoo.load(MODEL, engine="auto")
    x_all = model.embed(texts).numpy()
    zs = zoo.zero_shot(MODEL, LABELS)
    order = [zs.classes.index(c) for c in classes]
    zs_probabilities = zs.probabilities(x_all)[:, order]
    prompts = zs.prototypes[order]
    results: dict[tuple[str, int], list[float]] = {}
    times: dict[tuple[str, int], list[float]] = {}

    def record(method: str, n: int, probabilities, test) -> float:
        accuracy = float((probabilities.argmax(1) == labels[test]).mean())
        results.setdefault((method, n), []).append(accuracy)
        return accuracy

    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        by_class = {c: rng.permutation(np.flatnonzero(labels == c)) for c in range(len(classes))}
        test = np.concatenate([idx[:100] for idx in by_class.values()])
        record("zero-shot", 0, zs_probabilities[test], test)
        for n in args.sizes:
            train = np.concatenate([idx[100:100 + n] for idx in by_class.values()])
            x, y, x_test = x_all[train], labels[train], x_all[test]
            line = [f"seed {seed} N={n}: zero-shot {results[('zero-shot', 0)][-1]:.3f}"]
            line.append(f"tuned LR {record('tuned LR', n, tuned_lr(x, y, x_test), test):.3f}")
            folder = Path(home) / f"runs-{seed}-{n}"
            folder.mkdir()
            train_csv = write_csv(folder / "train.csv", [(texts[i], classes[labels[i]]) for i in train])
            test_csv = write_csv(folder / "test.csv", [(texts[i], classes[labels[i]]) for i in test])
            for key in args.methods:
                method, options = RUNS[key]
                started = time.perf_counter()
                run = zoo.finetune(MODEL, str(train_csv), test=str(test_csv), seed=seed, out=folder / f"zoo-{key}",
                                   progress=False, log=lambda _: None, **options)
                seconds = time.perf_counter() - started
                results.setdefault((method, n), []).append(run.test_accuracy)
                times.setdefault((method, n), []).append(seconds)
                weight = (run.label_prior or {}).get("weight")
                line.append(f"{method} {run.test_accuracy:.3f}" + (f" (w={weight:g})" if weight is not None else "")
                            + (f" [{run.config['recipe']}]" if key == "default" else "") + f" {seconds:.0f}s")
            # label-aware: the label prompts as one more example per class
            x_aware = np.vstack([x, prompts])
            y_aware = np.concatenate([y, np.arange(len(classes))])
            score = cross_validate(x_aware, y_aware, seed=seed)
            aware = fit_probe(x_aware, y_aware, score.C)
            line.append(f"prompts as examples {record('prompts as examples', n, aware.predict_proba(x_test), test):.3f}")
            plain = fit_probe(x, y, cross_validate(x, y, seed=seed).C)
            mixed = 0.5 * plain.predict_proba(x_test) + 0.5 * zs_probabilities[test]
            line.append(f"prior mix {record('prior mix', n, mixed, test):.3f}")
            print(" | ".join(line), flush=True)
    print("\nmethod                      N   mean    worst   seconds (mean)")
    for (method, n), values in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        spent = times.get((method, n))
        print(f"{method:<27} {n:>2}  {statistics.mean(values):.4f}  {min(values):.4f}"
              + (f"  {statistics.mean(spent):.0f}" if spent else ""))


if __name__ == "__main__":
    main()
