"""A cross-validated ridge probe: how well a linear map predicts numbers from features.

The regression twin of :mod:`zoo.fitting.linear`: features L2-normalised (one penalty grid fits
every layer's scale), then an outer K-fold (repeated with other shuffles when the set is small)
whose every training part chooses the penalty ``alpha`` by scikit-learn's ``RidgeCV`` (efficient
leave-one-out over :data:`ALPHAS`) on its own examples only, and scores its held-out part: the
estimate never sees the examples it is judged on. Targets come standardised (each column zero
mean, unit variance on the training data) so one penalty serves several targets; scores are given
back in the user's units with ``scale`` and ``shift``.

When there are fewer examples than features, fits run in the coordinates of the training rows'
span (exact for any L2-penalised linear model, see :func:`zoo.fitting.linear._row_basis`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from zoo.errors import InputError
from zoo.threads import blas_threads

__all__ = ["ALPHAS", "RidgeScore", "cross_validate_ridge", "fit_ridge", "regression_scores", "folds_for_regression"]

#: Penalties tried inside each fold (log-spaced over the range where L2-normalised embeddings of a
#: few hundred examples are best: small ones for many examples of good features).
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: Below this many examples the outer folds are repeated (3 shuffles) to steady the estimate.
SMALL = 200


@dataclass(frozen=True)
class RidgeScore:
    """A ridge probe's cross-validated estimate, means over every outer fold of every repeat (in
    the targets' own units), and the penalty chosen most often (what a final fit on all data uses)."""

    rmse: float
    mae: float
    r2: float
    spearman: float
    mse: float  # in standardised units, averaged over targets: what candidates are ranked by
    alpha: float
    folds: int
    repeats: int
    samples: int
    per_target: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def folds_for_regression(count: int, where: str = "the data") -> tuple[int, int]:
    """(k, repeats) for ``count`` examples; too few to fold is a clear error."""
    if count < 4:
        raise InputError(f"{where}: {count} labelled examples; a regression needs at least 4 to cross-validate "
                         f"(give more examples)")
    return min(5, count // 2), (3 if count < SMALL else 1)


def _inner(alphas: Sequence[float] = ALPHAS) -> Any:
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=list(alphas))


def regression_scores(truth: Any, predicted: Any, names: Sequence[str]) -> dict[str, Any]:
    """RMSE, MAE, R² (scikit-learn's) and Spearman's rank correlation (scipy's) per target in the
    given units, and their means over targets at the top level (one target: its own)."""
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    truth = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    per: dict[str, dict[str, float]] = {}
    for column, name in enumerate(names):
        t, p = truth[:, column], predicted[:, column]
        constant = np.ptp(t) == 0 or np.ptp(p) == 0
        per[name] = {"rmse": float(np.sqrt(mean_squared_error(t, p))), "mae": float(mean_absolute_error(t, p)),
                     "r2": float(r2_score(t, p)) if len(t) > 1 else float("nan"),
                     "spearman": 0.0 if constant else float(spearmanr(t, p).statistic)}
    means = {key: float(np.mean([row[key] for row in per.values()])) for key in ("rmse", "mae", "r2", "spearman")}
    return {**means, "n": int(len(truth)), "per_target": per}


@blas_threads(1)  # many small fits: one BLAS thread is far faster (zoo.threads.blas_threads)
def cross_validate_ridge(features: Any, values: Any, names: Sequence[str], *, scale: Any, shift: Any, seed: int = 0,
                         featurizer: Any = None, where: str = "the data") -> RidgeScore:
    """Nested cross-validation of an L2-normalised ridge probe on standardised ``values`` (n x
    targets); ``scale`` / ``shift`` turn them back into the user's units for the scores.
    ``featurizer``: a callable returning a fresh transformer fitted on each outer fold's training
    part only (TF-IDF), with ``features`` then the raw items."""
    import numpy as np
    from sklearn.model_selection import RepeatedKFold

    from zoo.fitting.linear import _normalise, fold_features

    y = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    scale, shift = np.asarray(scale, dtype=np.float64), np.asarray(shift, dtype=np.float64)
    x = np.asarray(features, dtype=object) if featurizer is not None else _normalise(features)
    k, repeats = folds_for_regression(len(y), where)
    truths, predictions, errors, chosen = [], [], [], Counter()
    for fold, (train, test) in enumerate(RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=seed).split(y)):
        x_train, x_test = fold_features(x, train, test, featurizer)
        model = _inner().fit(x_train, y[train])
        predicted = model.predict(x_test).reshape(len(test), -1)
        errors.append(float(((predicted - y[test]) ** 2).mean()))
        truths.append(y[test] * scale + shift)
        predictions.append(predicted * scale + shift)
        chosen[float(model.alpha_)] += 1
    folds = [regression_scores(t, p, names) for t, p in zip(truths, predictions)]
    per = {name: {key: float(np.mean([f["per_target"][name][key] for f in folds])) for key in folds[0]["per_target"][name]}
           for name in names}
    best = max(sorted(chosen), key=lambda a: chosen[a])
    return RidgeScore(rmse=float(np.mean([f["rmse"] for f in folds])), mae=float(np.mean([f["mae"] for f in folds])),
                      r2=float(np.mean([f["r2"] for f in folds])), spearman=float(np.mean([f["spearman"] for f in folds])),
                      mse=float(np.mean(errors)), alpha=best, folds=k, repeats=repeats, samples=len(y), per_target=per)


@blas_threads(1)
def fit_ridge(features: Any, values: Any, alpha: float) -> tuple[Any, Any]:
    """(weight, bias) of ridge on all L2-normalised ``features``: ``normalise(x) @ weight.T + bias``
    predicts the (standardised) ``values``, one row of ``weight`` per target."""
    import numpy as np
    from sklearn.linear_model import Ridge

    from zoo.fitting.linear import _normalise, _row_basis

    x = _normalise(features)
    y = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    basis = _row_basis(x)
    coordinates = x @ basis.T if basis is not None else x
    model = Ridge(alpha=alpha).fit(coordinates, y)
    weight = np.asarray(model.coef_).reshape(y.shape[1], -1)
    if basis is not None:
        weight = weight @ basis
    return weight, np.asarray(model.intercept_).reshape(y.shape[1])
