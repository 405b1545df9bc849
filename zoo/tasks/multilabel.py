"""Multi-label classification: one sigmoid per label on the frozen embeddings, each label's threshold chosen on folds.

A text (or image) may carry several labels (``label`` cells like ``politics;business``, see
:mod:`zoo.data.multilabel`). The task (:class:`MultiLabel`, registered like any task) then:

1. embeds every labelled example once at the card's cut point (the feature cache, as always);
2. fits one logistic regression per label on the L2-normalised embeddings (one-vs-rest), with one
   ``C`` for all labels chosen from :data:`zoo.fitting.linear.C_GRID` by the out-of-fold binary
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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import InputError, ZooError
from zoo.threads import blas_threads
from zoo.tasks.contract import Estimate, Output, Score, Targets, TaskContext

__all__ = ["MultiLabel", "choose_thresholds", "multilabel_scores", "cross_fit", "fitted_head", "MIN_PER_LABEL"]

#: Each label needs this many examples with it and without it (a fold must train on both).
MIN_PER_LABEL = 2
#: The folds of the out-of-fold probabilities (fewer when a label is rarer).
FOLDS = 5


def _folds(matrix: Any, where: str, names: tuple[str, ...]) -> int:
    positives = matrix.sum(0)
    negatives = len(matrix) - positives
    for name, pos, neg in zip(names, positives, negatives):
        if pos < MIN_PER_LABEL or neg < MIN_PER_LABEL:
            has = f"{int(pos)} example{'s' if pos != 1 else ''} with it and {int(neg)} without"
            raise InputError(f"{where}: label {name!r} has {has}; a multi-label run needs at least {MIN_PER_LABEL} "
                             f"of each to cross-validate it. Add examples, or drop the label from the data")
    return int(min(FOLDS, positives.min(), negatives.min()))


def _out_of_fold(x: Any, matrix: Any, C: float, k: int, seed: int) -> Any:
    """Out-of-fold P(label) for every example and label. Folds come from KFold (scikit-learn has no
    stratified multi-label splitter); a fold whose training part lacks a label's positives or
    negatives predicts that label's training rate there."""
    import numpy as np
    from sklearn.model_selection import KFold

    from zoo.fitting.linear import fit_probe

    out = np.zeros(matrix.shape, dtype=np.float64)
    for train, held in KFold(n_splits=k, shuffle=True, random_state=seed).split(x):
        for label in range(matrix.shape[1]):
            y = matrix[train, label]
            if y.min() == y.max():
                out[held, label] = float(y.mean())
                continue
            out[held, label] = fit_probe(x[train], y, C).predict_proba(x[held])[:, 1]
    return out


def _log_loss(matrix: Any, probabilities: Any) -> float:
    import numpy as np

    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-(matrix * np.log(p) + (1 - matrix) * np.log(1 - p)).mean())


def choose_thresholds(matrix: Any, probabilities: Any) -> Any:
    """Per label, the threshold on ``probabilities`` with the best F1 against ``matrix`` (ties:
    the one nearest 0.5); a label is predicted when its probability reaches its threshold."""
    import numpy as np
    from sklearn.metrics import f1_score

    thresholds = np.full(matrix.shape[1], 0.5)
    for label in range(matrix.shape[1]):
        candidates = np.unique(np.concatenate([probabilities[:, label], [0.5]]))
        scores = [(f1_score(matrix[:, label], probabilities[:, label] >= t, zero_division=0), -abs(t - 0.5), t)
                  for t in candidates]
        thresholds[label] = max(scores)[2]
    return thresholds


def multilabel_scores(matrix: Any, predicted: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """micro-F1, macro-F1, exact-match accuracy, and per label precision / recall / F1 / support."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(matrix, predicted, zero_division=0)
    return {"micro_f1": float(f1_score(matrix, predicted, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(matrix, predicted, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(matrix, predicted)),  # exact match: every label right
            "n": int(len(matrix)),
            "per_label": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                          for name, p, r, f, s in zip(names, precision, recall, f1, support)}}


@blas_threads(1)
def cross_fit(x: Any, matrix: Any, names: tuple[str, ...], *, seed: int, where: str) -> dict[str, Any]:
    """C and thresholds chosen on folds; the out-of-fold estimate."""
    from zoo.fitting.linear import C_GRID

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


def fitted_head(x: Any, matrix: Any, C: float) -> tuple[Any, Any]:
    """(weight, bias) of one regression per label on all of ``x``, for :class:`NormalisedLinear`:
    ``sigmoid(normalise(x) @ weight.T + bias)`` is each label's probability."""
    import numpy as np

    from zoo.fitting.linear import fit_probe

    rows, biases = [], []
    for label in range(matrix.shape[1]):
        weight, bias = fit_probe(x, matrix[:, label], C).linear()  # two rows: [0, w] (see fit_probe)
        rows.append(weight[1] - weight[0])
        biases.append(bias[1] - bias[0])
    return np.stack(rows), np.asarray(biases)


def _sigmoid(z: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


class MultiLabel:
    """The built-in multi-label task (see the module): frozen heads only, the card's own cut."""

    name = "multi-label"
    description = "several labels per example ('a;b' label cells): a sigmoid per label, thresholds chosen on folds"
    metrics = {"micro_f1": True}
    by_class = False
    chooses_cut = False
    epochs = False
    rank_name = "log-loss"

    def check(self, options: Any) -> None:
        """A multi-label run is a head per label on cached embeddings, cross-validated on every
        labelled example: the options that ask for something else say so."""
        plan, head = options.plan, options.head
        asked = [flag for flag, given in (
            ("--per-class", options.data.per_class is not None), ("--val-split", options.data.val_split is not None),
            ("--validation split", plan.validation == "split"), ("--recipe contrastive", plan.recipe == "contrastive"),
            ("--unfreeze", options.unfreezing.unfreeze not in ("auto", 0)), ("--head mlp", head.kind != "linear"),
            ("--cut", plan.cut != "auto"), ("--label-prior always", plan.label_prior == "always"),
            ("--metric", plan.metric not in ("auto", "micro_f1"))) if given]
        if asked:
            raise ZooError(f"a multi-label run fits one logistic regression per label on the frozen embeddings, "
                           f"cross-validated on every labelled example; {', '.join(asked)} "
                           f"{'does' if len(asked) == 1 else 'do'} not apply (give a --test set to hold data out)")

    def claims(self, dataset: Any, options: Any) -> bool:
        from zoo.data.multilabel import multi_label_rows

        return bool(dataset.classes) and bool(multi_label_rows(dataset))

    def targets(self, dataset: Any, options: Any, like: Targets | None = None) -> Targets:
        from zoo.data.multilabel import label_sets

        sets = label_sets(dataset, like.names if like is not None else None)
        return Targets(sets.names, sets.matrix)

    def class_weights(self, targets: Targets, options: Any) -> None:
        return None

    def head(self, in_dim: int, targets: Targets, context: TaskContext, *, normalised: bool) -> Any:
        from zoo.tasks.heads import NormalisedLinear

        return NormalisedLinear(in_dim, len(targets.names))

    def loss(self, targets: Targets, context: TaskContext) -> Any:
        raise ZooError("a multi-label run trains no epochs")

    def judge(self, outputs: Any, values: Any, context: TaskContext) -> Score:
        raise ZooError("a multi-label run trains no epochs")

    def cross_validate(self, x: Any, targets: Targets, context: TaskContext, *, seed: int) -> Estimate:
        chosen = cross_fit(x, targets.values, targets.names, seed=seed, where=context.where)
        estimate = chosen["estimate"]
        scores = {**{k: v for k, v in estimate.items() if k != "per_label"}, "folds": chosen["folds"], "repeats": 1,
                  "log_loss": chosen["log_loss"], "tried": chosen["tried"]}
        return Estimate(scores=scores, rank=chosen["log_loss"],
                        params={"C": chosen["C"], "thresholds": list(chosen["thresholds"])})

    def fit(self, x: Any, targets: Targets, params: Mapping[str, Any], context: TaskContext) -> Any:
        from zoo.tasks.heads import NormalisedLinear

        weight, bias = fitted_head(x, targets.values, params["C"])
        return NormalisedLinear.fitted(weight, bias)

    def choices(self, params: Mapping[str, Any], targets: Targets) -> dict[str, Any]:
        """What the run records of its fit: each label's threshold."""
        return {"multi_label": {"thresholds": dict(zip(targets.names, params["thresholds"]))}}

    def evaluate(self, outputs: Any, targets: Targets, choices: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np

        thresholds = np.asarray([choices["multi_label"]["thresholds"][n] for n in targets.names])
        return multilabel_scores(targets.values, _sigmoid(outputs) >= thresholds, targets.names)

    def predictions(self, folder: Path, name: str, dataset: Any, outputs: Any, targets: Targets,
                    choices: Mapping[str, Any]) -> None:
        """Each held-out example's label probabilities, thresholds and truth, for the report page."""
        from zoo.predictions import write_predictions

        write_predictions(folder, name, dataset, _sigmoid(outputs), targets.names,
                          thresholds=choices["multi_label"]["thresholds"], truth=targets.values)

    def baseline(self, modality: str, labelled: Any, targets: Targets,
                 held_out: Mapping[str, tuple[Any, Targets]], context: TaskContext, *, seed: int) -> dict[str, Any] | None:
        """The same procedure on TF-IDF (text) or 16x16 pixels (images), scored on the test set.
        TF-IDF is fitted on all labelled texts here (not inside each fold): the baseline's folds see
        the vocabulary of their held-out texts, which can only flatter it."""
        import numpy as np

        from zoo.fitting.linear import normalise
        from zoo.tasks.baseline import raw_features

        raw = raw_features(modality, [e.item for e in labelled.examples], context.spec)
        if raw is None or modality not in ("image", "text") or (context.spec is not None and context.spec.front_end):
            return None
        test = held_out.get("test")
        x, x_test = raw.fitted([e.item for e in test[0].examples]) if test else (raw.matrix(), None)
        name = (f"{raw.name} + logistic regression per label" if modality == "text"
                else f"logistic regression per label on {raw.name}")
        chosen = cross_fit(x, targets.values, targets.names, seed=seed, where=labelled.name)
        result: dict[str, Any] = {"name": name, "cv": chosen["estimate"], "C": chosen["C"]}
        if test:
            weight, bias = fitted_head(x, targets.values, chosen["C"])
            probabilities = _sigmoid(normalise(x_test) @ weight.T + bias)
            result["test"] = multilabel_scores(test[1].values, probabilities >= np.asarray(chosen["thresholds"]),
                                               targets.names)
        return result

    def compare(self, transfer: Mapping[str, Any], base: dict[str, Any] | None, context: TaskContext) -> str:
        from zoo.tasks.baseline import compare

        return compare(dict(transfer), base, "micro_f1", "micro-F1")

    def lines(self, metrics: Mapping[str, Any]) -> tuple[str, list[str]]:
        summary = ", ".join(f"{name} micro-F1 {m['micro_f1']:.3f} macro-F1 {m['macro_f1']:.3f} exact match "
                            f"{m['accuracy']:.3f} (n={m['n']})" for name in ("val", "test") if (m := metrics.get(name)))
        head = metrics.get("cv", {}).get("head", {})
        shown = ", ".join(f"{name} {t:.2f}" for name, t in list(metrics.get("thresholds", {}).items())[:6])
        lines = [f"multi-label head: cross-validated micro-F1 {head.get('micro_f1', 0):.3f} macro-F1 "
                 f"{head.get('macro_f1', 0):.3f} over {head.get('folds')} folds (thresholds chosen on the "
                 f"same folds: slightly optimistic); thresholds {shown}"]
        if metrics.get("baseline_line"):
            lines.append(metrics["baseline_line"])
        return summary, lines

    def plots(self, metrics: Mapping[str, Any], names: Sequence[str], folder: Path) -> list[Path]:
        return []

    def output(self, targets_record: Mapping[str, Any], choices: Mapping[str, Any]) -> Output:
        thresholds = choices["multi_label"]["thresholds"]
        return Output(kind="classifier", activation="sigmoid", metadata={"thresholds": list(thresholds.values())})
