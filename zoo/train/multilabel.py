"""Multi-label runs: one sigmoid per label on the frozen embeddings, each label's threshold chosen on folds.

A text (or image) may carry several labels (``label`` cells like ``politics;business``, see
:mod:`zoo.data.multilabel`). ``zoo finetune`` then:

1. embeds every labelled example once at the card's cut point (the feature cache, as always);
2. fits one logistic regression per label on the L2-normalised embeddings (one-vs-rest), with one
   ``C`` for all labels chosen from :data:`zoo.probing.linear.C_GRID` by the out-of-fold binary
   log-loss averaged over labels (k-fold, shuffled by the seed);
3. chooses each label's threshold on the chosen ``C``'s out-of-fold probabilities: the one with
   that label's best F1 (ties: nearest 0.5), so a rare label is not drowned by a fixed 0.5;
4. reports the out-of-fold micro- and macro-F1 with those thresholds (chosen on the same
   probabilities, so slightly optimistic: the report says so), and, on a ``--test`` set, micro-F1,
   macro-F1, exact-match accuracy and per-label F1, beside the same procedure on TF-IDF (text)
   or raw pixels (images): the baseline line;
5. fits the regressions on all labelled examples: the run's head (:class:`NormalisedLinear`,
   one row per label), exported with a sigmoid and the thresholds in the ONNX metadata.

The backbone stays frozen: multi-label runs are the head on cached embeddings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import InputError
from zoo.probing.linear import C_GRID, fit_probe, normalise
from zoo.train.baseline import PIXELS, compare, pixel_features, tfidf_vectorizer

__all__ = ["fit_multilabel", "choose_thresholds", "multilabel_scores", "MIN_PER_LABEL"]

#: Each label needs this many examples with it and without it (a fold must train on both).
MIN_PER_LABEL = 2
#: The folds of the out-of-fold probabilities (fewer when a label is rarer).
FOLDS = 5


def _folds(matrix: np.ndarray, where: str, names: tuple[str, ...]) -> int:
    positives = matrix.sum(0)
    negatives = len(matrix) - positives
    for name, pos, neg in zip(names, positives, negatives):
        if pos < MIN_PER_LABEL or neg < MIN_PER_LABEL:
            has = f"{int(pos)} example{'s' if pos != 1 else ''} with it and {int(neg)} without"
            raise InputError(f"{where}: label {name!r} has {has}; a multi-label run needs at least {MIN_PER_LABEL} "
                             f"of each to cross-validate it. Add examples, or drop the label from the data")
    return int(min(FOLDS, positives.min(), negatives.min()))


def _out_of_fold(x: np.ndarray, matrix: np.ndarray, C: float, k: int, seed: int) -> np.ndarray:
    """Out-of-fold P(label) for every example and label. Folds come from KFold (scikit-learn has no
    stratified multi-label splitter); a fold whose training part lacks a label's positives or
    negatives predicts that label's training rate there."""
    from sklearn.model_selection import KFold

    out = np.zeros(matrix.shape, dtype=np.float64)
    for train, held in KFold(n_splits=k, shuffle=True, random_state=seed).split(x):
        for label in range(matrix.shape[1]):
            y = matrix[train, label]
            if y.min() == y.max():
                out[held, label] = float(y.mean())
                continue
            out[held, label] = fit_probe(x[train], y, C).predict_proba(x[held])[:, 1]
    return out


def _log_loss(matrix: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-(matrix * np.log(p) + (1 - matrix) * np.log(1 - p)).mean())


def choose_thresholds(matrix: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per label, the threshold on ``probabilities`` with the best F1 against ``matrix`` (ties:
    the one nearest 0.5); a label is predicted when its probability reaches its threshold."""
    from sklearn.metrics import f1_score

    thresholds = np.full(matrix.shape[1], 0.5)
    for label in range(matrix.shape[1]):
        candidates = np.unique(np.concatenate([probabilities[:, label], [0.5]]))
        scores = [(f1_score(matrix[:, label], probabilities[:, label] >= t, zero_division=0), -abs(t - 0.5), t)
                  for t in candidates]
        thresholds[label] = max(scores)[2]
    return thresholds


def multilabel_scores(matrix: np.ndarray, predicted: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """micro-F1, macro-F1, exact-match accuracy, and per label precision / recall / F1 / support."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(matrix, predicted, zero_division=0)
    return {"micro_f1": float(f1_score(matrix, predicted, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(matrix, predicted, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(matrix, predicted)),  # exact match: every label right
            "n": int(len(matrix)),
            "per_label": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                          for name, p, r, f, s in zip(names, precision, recall, f1, support)}}


def cross_fit(x: np.ndarray, matrix: np.ndarray, names: tuple[str, ...], *, seed: int, where: str) -> dict[str, Any]:
    """C and thresholds chosen on folds; the out-of-fold estimate."""
    k = _folds(matrix, where, names)
    tried = []
    for C in C_GRID:
        probabilities = _out_of_fold(x, matrix, C, k, seed)
        tried.append((_log_loss(matrix, probabilities), C, probabilities))
    loss, C, probabilities = min(tried, key=lambda t: (t[0], t[1]))
    thresholds = choose_thresholds(matrix, probabilities)
    estimate = multilabel_scores(matrix, probabilities >= thresholds, names)
    return {"C": float(C), "folds": k, "log_loss": loss, "thresholds": thresholds.tolist(),
            "tried": [{"C": float(c), "log_loss": float(v)} for v, c, _ in tried], "estimate": estimate}


def fitted_head(x: np.ndarray, matrix: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of one regression per label on all of ``x``, for :class:`NormalisedLinear`:
    ``sigmoid(normalise(x) @ weight.T + bias)`` is each label's probability."""
    rows, biases = [], []
    for label in range(matrix.shape[1]):
        weight, bias = fit_probe(x, matrix[:, label], C).linear()  # two rows: [0, w] (see fit_probe)
        rows.append(weight[1] - weight[0])
        biases.append(bias[1] - bias[0])
    return np.stack(rows), np.asarray(biases)


def _baseline(modality: str, labelled: Any, matrix: np.ndarray, test: Any, test_matrix: Any, names: tuple[str, ...],
              seed: int) -> dict[str, Any] | None:
    """The same procedure on TF-IDF (text) or 16x16 pixels (images), scored on the test set."""
    items = [e.item for e in labelled.examples]
    if modality == "text":
        vectorizer = tfidf_vectorizer()
        x = vectorizer.fit_transform(items).toarray()
        x_test = vectorizer.transform([e.item for e in test.examples]).toarray() if test is not None else None
        name = "TF-IDF (words and pairs) + logistic regression per label"
    elif modality == "image":
        x = pixel_features(items)
        x_test = pixel_features([e.item for e in test.examples]) if test is not None else None
        name = f"logistic regression per label on raw pixels ({PIXELS}x{PIXELS} RGB)"
    else:
        return None
    # TF-IDF is fitted on all labelled texts here (not inside each fold): the baseline's folds
    # see the vocabulary of their held-out texts, which can only flatter it
    chosen = cross_fit(x, matrix, names, seed=seed, where=labelled.name)
    result: dict[str, Any] = {"name": name, "cv": chosen["estimate"], "C": chosen["C"]}
    if test is not None:
        weight, bias = fitted_head(x, matrix, chosen["C"])
        probabilities = _sigmoid(normalise(x_test) @ weight.T + bias)
        result["test"] = multilabel_scores(test_matrix, probabilities >= np.asarray(chosen["thresholds"]), names)
    return result


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_multilabel(card: Any, config: Any, run_dir: Path, *, names: tuple[str, ...], labelled: Any,
                   matrix: np.ndarray, x: np.ndarray, test: Any, test_matrix: Any, x_test: Any,
                   record: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    """The multi-label run in ``run_dir`` (see the module): ``labelled`` and ``test`` with their
    label ``matrix`` over ``names`` and their features ``x`` / ``x_test`` (the frozen pass's
    ``record``). Writes selection.json, the report, final.pt; returns the report."""
    import torch

    from zoo.atomic import atomic_torch_save, atomic_write_json
    from zoo.train.heads import NormalisedLinear

    started = time.perf_counter()
    chosen = cross_fit(x, matrix, names, seed=config.seed, where=labelled.name)
    atomic_write_json(run_dir / "selection.json", chosen)
    estimate = chosen["estimate"]
    say(f"head: one logistic regression per label (C={chosen['C']:g}), thresholds chosen on {chosen['folds']} folds; "
        f"cross-validated micro-F1 {estimate['micro_f1']:.3f} macro-F1 {estimate['macro_f1']:.3f}")
    weight, bias = fitted_head(x, matrix, chosen["C"])
    head = NormalisedLinear.fitted(weight, bias)
    thresholds = np.asarray(chosen["thresholds"])
    report: dict[str, Any] = {"validation": "cv", "multi_label": True, "metric": "micro_f1",
                              "recipe": "head", "cut": [card.embedding.node], "best_epoch": 1, "best_phase": 0,
                              "stopped": None, "thresholds": dict(zip(names, thresholds.tolist())),
                              "cv": {"head": {**{k: v for k, v in estimate.items() if k != "per_label"},
                                              "folds": chosen["folds"], "repeats": 1, "log_loss": chosen["log_loss"]}}}
    if test is not None:
        with torch.no_grad():
            logits = head(torch.from_numpy(x_test).float()).numpy()
        report["test"] = multilabel_scores(test_matrix, _sigmoid(logits) >= thresholds, names)
    base = _baseline(card.modality, labelled, matrix, test, test_matrix, names,
                     config.seed)
    report["baseline"] = base
    report["baseline_line"] = compare({"cv": estimate, "test": report.get("test")}, base, "micro_f1")
    seconds = time.perf_counter() - started
    row = {"epoch": 1, "stage": "head (cv, multi-label)", "phase": 0, "phase_epoch": 0, "train_loss": None,
           "train_acc": None, "val_loss": None, "val_acc": None, "cv_acc": estimate["micro_f1"],
           "cv_loss": chosen["log_loss"], "seconds": seconds, "best": True}
    (run_dir / "metrics.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (run_dir / "report").mkdir(exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    (run_dir / "features").mkdir(exist_ok=True)
    best = {"epoch": 1, "phase": 0, "score": {"acc": estimate["micro_f1"], "loss": chosen["log_loss"]}}
    atomic_write_json(run_dir / "report" / "metrics.json", report)
    atomic_write_json(run_dir / "checkpoints" / "best.json", {"epoch": 1, "phase": 0, **best["score"]})
    atomic_torch_save(run_dir / "checkpoints" / "final.pt", {
        "head": {k: v.detach().cpu() for k, v in head.state_dict().items()}, "body": {}, "best": best})
    atomic_write_json(run_dir / "features" / "index.json", {"labelled": record})
    return report
