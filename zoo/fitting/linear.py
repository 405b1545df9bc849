"""A cross-validated linear probe: how well a logistic regression separates the classes of features.

The features are L2-normalised (so one regularisation grid fits every layer's scale). Each outer
fold of a stratified k-fold (k = min(5, smallest class); repeated with other shuffles when the
set is small, so one unlucky split does not decide) chooses the regularisation strength ``C`` by
an inner stratified cross-validation on its own training part only, then scores the held-out
part: the estimate never sees the examples it is judged on, not even to pick ``C``. scikit-learn
does the fitting (``LogisticRegressionCV`` for the inner choice); this module only arranges the
folds and the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from zoo.errors import InputError
from zoo.threads import blas_threads

__all__ = ["CVScore", "cross_validate", "fit_probe", "C_GRID", "folds_for", "METRICS", "normalise"]

#: Inverse regularisation strengths tried inside each fold (log-spaced; weak regularisation wins
#: on few examples of good features: C=100 on digits with 10 labels per class, issue 11).
C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
#: The strength used where no inner fold can choose one (the middle of the grid).
UNTUNED_C = 10.0
#: What the regularisation is chosen for inside the folds (``--metric``), as scikit-learn scorers.
METRICS = {"accuracy": "accuracy", "macro_f1": "f1_macro"}
#: Below this many examples the outer folds are repeated (3 shuffles) to steady the estimate.
SMALL = 200


@dataclass(frozen=True)
class CVScore:
    """A probe's cross-validated estimate (means over every outer fold of every repeat)."""

    accuracy: float
    accuracy_std: float
    macro_f1: float
    log_loss: float  # what candidates are ranked by (see zoo.probing.run)
    C: float  # the strength chosen most often across folds (what a final fit on all data uses)
    folds: int
    repeats: int
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def folds_for(labels: Sequence[int], where: str = "the data") -> tuple[int, int]:
    """(k, repeats) for these labels; a class with one example is a clear error, not a traceback."""
    import numpy as np

    counts = np.bincount(np.asarray(labels))
    counts = counts[counts > 0]
    if len(counts) < 2:
        raise InputError(f"{where}: {len(counts)} class with examples; a probe needs at least two")
    smallest = int(counts.min())
    if smallest < 2:
        raise InputError(f"{where}: a class has a single labelled example, so no fold can both train on "
                         f"it and test it; give at least 2 examples per class (cross-validation needs them)")
    return min(5, smallest), (3 if len(labels) < SMALL else 1)


def _row_basis(train: Any) -> Any:
    """An orthonormal basis (rows) of the span of ``train``'s rows when that is smaller than the
    feature dimension (few examples of wide features: 80 x 1280), else None.

    Fitting in its coordinates is exact for an L2-penalised logistic regression: its optimal
    weights lie in that span (the gradient of the loss is a sum of training rows, and the
    penalty's is the weights), and the penalty is unchanged by the rotation, so fits and
    predictions are the same while lbfgs works on n instead of d coordinates (the 1280-wide
    embedding probe: 70 s -> about 1 s on digits).
    """
    import numpy as np

    if train.shape[0] >= train.shape[1]:
        return None
    _, singular, rows = np.linalg.svd(train, full_matrices=False)
    return rows[singular > singular.max() * 1e-10]


def fold_features(x: Any, train: Any, test: Any, featurizer: Any = None) -> tuple[Any, Any]:
    """One fold's training and held-out features, ready to fit: raw inputs featurized inside the
    fold (the featurizer fitted on the training part only, then L2-normalised), projected on the
    training rows' space (:func:`_row_space`)."""
    if featurizer is not None:
        made = featurizer()
        x_train, x_test = made.fit_transform(list(x[train])), made.transform(list(x[test]))
        x_train, x_test = _normalise(_dense(x_train)), _normalise(_dense(x_test))
    else:
        x_train, x_test = x[train], x[test]
    return _row_space(x_train, x_test)


def _row_space(train: Any, *others: Any) -> tuple[Any, ...]:
    """``train`` (and ``others``) in the coordinates of :func:`_row_basis` (unchanged without one)."""
    basis = _row_basis(train)
    if basis is None:
        return (train, *others)
    return (train @ basis.T, *(other @ basis.T for other in others))


def normalise(features: Any) -> Any:
    """Rows scaled to unit L2 norm (float64), as the probe sees them."""
    return _normalise(features)


def _normalise(features: Any) -> Any:
    import numpy as np

    features = np.asarray(features, dtype=np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _inner_model(labels: Any, seed: int, class_weight: str | None, metric: str = "accuracy") -> Any:
    """A LogisticRegressionCV choosing C on its own training data by stratified folds; with one
    example of every class (an outer fold of a set of 2 per class) no inner fold can be made, and
    C is :data:`UNTUNED_C`."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    if int(counts.max()) < 2:
        return LogisticRegression(C=UNTUNED_C, max_iter=5000, class_weight=class_weight)
    smallest = int(counts[counts > 0].min())
    inner = StratifiedKFold(n_splits=max(2, min(3, smallest)), shuffle=True, random_state=seed)
    return LogisticRegressionCV(Cs=list(C_GRID), cv=inner, max_iter=5000, class_weight=class_weight,
                                scoring=METRICS[metric])


@blas_threads(1)  # thousands of small fits: one BLAS thread is far faster (zoo.threads.blas_threads)
def cross_validate(features: Any, labels: Sequence[int], *, seed: int = 0, class_weight: str | None = None,
                   metric: str = "accuracy", featurizer: Any = None, where: str = "the data") -> CVScore:
    """Nested cross-validation of an L2-normalised logistic-regression probe (see the module).

    ``metric`` is what the inner folds choose ``C`` for. ``featurizer``: a callable returning a
    fresh scikit-learn transformer (TF-IDF) fitted on each outer fold's training part only, with
    ``features`` then the raw items (a list of texts)."""
    import warnings
    from collections import Counter

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, f1_score, log_loss
    from sklearn.model_selection import RepeatedStratifiedKFold

    y = np.asarray(labels)
    x = np.asarray(features, dtype=object) if featurizer is not None else _normalise(features)
    k, repeats = folds_for(y, where)
    splitter = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    accuracies, f1s, losses, chosen = [], [], [], Counter()
    classes = np.unique(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's notes on LogisticRegressionCV's future API
        # an outer fold's training part may hold one example of a class, which the inner folds
        # cannot stratify: expected on tiny sets, and C is still chosen on the others
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (train, test) in enumerate(splitter.split(x, y)):
            x_train, x_test = fold_features(x, train, test, featurizer)
            model = _inner_model(y[train], seed + fold, class_weight, metric).fit(x_train, y[train])
            probabilities = model.predict_proba(x_test)
            predicted = model.classes_[probabilities.argmax(1)]
            accuracies.append(accuracy_score(y[test], predicted))
            f1s.append(f1_score(y[test], predicted, average="macro", labels=classes, zero_division=0))
            losses.append(log_loss(y[test], probabilities, labels=classes))
            chosen[float(model.C_[0] if hasattr(model, "C_") else model.C)] += 1
    best_c = max(sorted(chosen), key=lambda c: chosen[c])
    return CVScore(accuracy=float(np.mean(accuracies)), accuracy_std=float(np.std(accuracies)),
                   macro_f1=float(np.mean(f1s)), log_loss=float(np.mean(losses)), C=best_c, folds=k,
                   repeats=repeats, samples=len(y))


def _dense(matrix: Any) -> Any:
    """A featurizer's output as a dense array (TF-IDF gives a sparse matrix, a scaler an array)."""
    return matrix.toarray() if hasattr(matrix, "toarray") else matrix


def fit_probe(features: Any, labels: Sequence[int], C: float, *, class_weight: str | None = None) -> Any:
    """The probe fitted on all labelled examples with the chosen ``C``: ``predict(features)``
    normalises and projects like the fit did."""
    return _Probe(features, labels, C, class_weight)


class _Probe:
    @blas_threads(1)
    def __init__(self, features: Any, labels: Sequence[int], C: float, class_weight: str | None) -> None:
        import warnings

        import numpy as np
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        self.basis = _row_basis(_normalise(features))
        x = self._coordinates(features)
        self.model = LogisticRegression(C=C, max_iter=5000, class_weight=class_weight)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x, np.asarray(labels))

    def _coordinates(self, features: Any) -> Any:
        x = _normalise(features)
        return x @ self.basis.T if self.basis is not None else x

    def predict(self, features: Any) -> Any:
        return self.model.predict(self._coordinates(features))

    def linear(self) -> tuple[Any, Any]:
        """``(weight, bias)`` of the fitted probe on L2-normalised features, for a torch head:
        ``softmax(normalise(x) @ weight.T + bias)`` is its ``predict_proba`` (a two-class fit's
        single row becomes ``[0, w]``, whose softmax is the fit's sigmoid)."""
        import numpy as np

        weight, bias = self.model.coef_, self.model.intercept_
        if self.basis is not None:
            weight = weight @ self.basis
        if weight.shape[0] == 1:
            weight, bias = np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
        return weight, bias

    def predict_proba(self, features: Any) -> Any:
        return self.model.predict_proba(self._coordinates(features))
