"""Regression: one or several numbers per example (``--target age`` or ``--target price,rating``).

- Targets: numeric columns of a CSV / JSONL manifest (an image folder carries no numbers). A cell
  that is empty, not a number, NaN or infinite, or that holds several labels (``1;2``) is a bad
  row (``--skip-bad`` leaves it out); a target with one value throughout is an error. Targets are
  standardised on the training data (zero mean, unit variance per column) for training; every
  number a person reads is in their own units.
- Loss: mean squared error on the standardised targets; epochs are judged by it.
- The frozen head: ridge on L2-normalised features, its penalty chosen inside the folds
  (:mod:`zoo.fitting.ridge`), candidates (cuts) ranked by the cross-validated squared error.
- Baseline: the mean predictor, and ridge on raw pixels, TF-IDF or a front end's features,
  cross-validated the same way.
- Report: RMSE, MAE, R² and Spearman per target (``rmse``, ``mae``, ``r2``, ``spearman`` in
  ``report/metrics.json``: means over targets, per target under ``per_target``), and
  predicted-against-true and residual plots.
- Export: the graph ends in the affine map back to the user's units; the metadata names the targets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import InputError, ZooError
from zoo.tasks.contract import Estimate, Output, Score, Targets, TaskContext

__all__ = ["Regression", "parse_number", "looks_numeric", "DISTINCT", "NUMBERS_SHARE"]

#: A --target column of numbers is a regression (rather than classes named by numbers) when some
#: value is not a whole number or it has more than this many distinct values (ratings 1-5 are
#: classes; ages, prices and angles are numbers).
DISTINCT = 10

#: ... and when at least this share of its cells are numbers: a column of numbers with a few typos
#: stays numbers (the typos are bad rows, each named), a column of words is classes.
NUMBERS_SHARE = 0.9

_METRIC_NAMES = {"rmse": "RMSE", "mae": "MAE", "r2": "R²"}


def parse_number(value: Any) -> tuple[float | None, str | None]:
    """A cell as a finite number, or why it is not one."""
    if isinstance(value, bool):
        return None, f"{value!r} is not a number"
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = "" if value is None else str(value).strip()
        if not text:
            return None, "empty"
        if ";" in text:
            return None, f"{text!r} holds several values (';' separates labels of a multi-label run); give one number"
        try:
            number = float(text)
        except ValueError:
            return None, f"{text[:40]!r} is not a number"
    if math.isnan(number):
        return None, "NaN is not a value to learn"
    if math.isinf(number):
        return None, "infinite"
    return number, None


def looks_numeric(values: Sequence[Any]) -> bool:
    """The --target rule: at least :data:`NUMBERS_SHARE` of the cells are finite numbers (the others
    are bad rows, said one by one), and some are not whole or there are more than :data:`DISTINCT`
    distinct ones."""
    parsed = [parse_number(v)[0] for v in values]
    numbers = [n for n in parsed if n is not None]
    if not numbers or len(numbers) < NUMBERS_SHARE * len(parsed):
        return False
    return any(n != int(n) for n in numbers) or len(set(numbers)) > DISTINCT


def _columns(options: Any) -> tuple[str, ...]:
    target = options.data.target
    if not target:
        raise InputError("a regression needs its target columns: --target COLUMN (or several, 'price,rating')")
    return tuple(part.strip() for part in str(target).split(",") if part.strip())


class Regression:
    """The built-in regression task (see the module)."""

    name = "regression"
    description = "one or several numbers per example (--target COLUMN): ridge / MSE, reported in your units"
    metrics = {"rmse": False, "mae": False, "r2": True}
    by_class = False
    chooses_cut = True
    epochs = True
    rank_name = "mse"

    def check(self, options: Any) -> None:
        asked = [flag for flag, given in (
            ("--per-class", options.data.per_class is not None), ("--recipe contrastive", options.plan.recipe == "contrastive"),
            ("--label-prior always", options.plan.label_prior == "always"), ("--labels", options.plan.labels is not None),
            ("--class-weight balanced", options.head.class_weight == "balanced")) if given]
        if asked:
            raise ZooError(f"a regression learns numbers, not classes: {', '.join(asked)} "
                           f"{'does' if len(asked) == 1 else 'do'} not apply (hold data out with --test or --val-split)")
        if options.plan.metric not in ("auto", *self.metrics):
            raise ZooError(f"--metric {options.plan.metric} is for classes; a regression takes rmse, mae or r2")

    def claims(self, dataset: Any, options: Any) -> bool:
        columns = options.data.target
        if not columns:
            return False
        names = _columns(options)
        if len(names) > 1:
            return True
        rows = [e.fields or {} for e in dataset.examples]
        return looks_numeric([row.get(names[0]) for row in rows if names[0] in row])

    def problem(self, example: Any, options: Any) -> str | None:
        """Why an example's targets are unusable (a bad row, which --skip-bad leaves out), or None."""
        fields = example.fields
        if fields is None:
            return None  # a format without columns: refused as a whole by targets()
        for column in _columns(options):
            if column not in fields:
                continue  # a missing column is refused as a whole by targets()
            _, why = parse_number(fields[column])
            if why is not None:
                return f"target {column!r}: {why}"
        return None

    def targets(self, dataset: Any, options: Any, like: Targets | None = None) -> Targets:
        import numpy as np

        columns = _columns(options)
        if not dataset.examples and like is not None:  # an empty set (no validation set): nothing to read
            return Targets(columns, np.zeros((0, len(columns)), dtype=np.float32), None, dict(like.record))
        if dataset.examples and all(e.fields is None for e in dataset.examples):
            raise InputError(f"{options.data.data}: a regression reads its numbers from a manifest's columns, and "
                             f"this data has none (a folder's subfolders name classes; folders cannot carry numbers): "
                             f"use a manifest, a CSV or JSONL with a path (or text) column and the "
                             f"{', '.join(columns)} column(s)")
        present = set().union(*(e.fields.keys() for e in dataset.examples if e.fields)) if dataset.examples else set()
        missing = [c for c in columns if c not in present]
        if missing:
            shown = ", ".join(sorted(present - {"path", "text"})[:8]) or "none"
            raise InputError(f"{dataset.name}: --target names the column {missing[0]!r}, which the data does not have "
                             f"(its other columns: {shown}); check the spelling")
        values = np.zeros((len(dataset), len(columns)), dtype=np.float64)
        for row, example in enumerate(dataset.examples):
            for column, name in enumerate(columns):
                number, why = parse_number((example.fields or {}).get(name))
                if why is not None:
                    raise InputError(f"{example.where}: target {name!r}: {why}; fix the row or skip it with --skip-bad")
                values[row, column] = number
        if like is None:
            shift = values.mean(0) if len(values) else np.zeros(len(columns))
            scale = values.std(0) if len(values) else np.ones(len(columns))
            constant = [name for name, s in zip(columns, scale) if not s > 0]
            if constant and len(values):
                raise InputError(f"{dataset.name}: target {constant[0]!r} has the same value ({values[0, columns.index(constant[0])]:g}) "
                                 f"in every training example: nothing to learn; check the column")
            record = {"names": list(columns), "mean": shift.tolist(), "std": scale.tolist()}
        else:
            record = dict(like.record)
            shift, scale = np.asarray(record["mean"]), np.asarray(record["std"])
        return Targets(columns, ((values - shift) / scale).astype(np.float32), None, record)

    # ----------------------------------------------------------------- heads and losses

    def head(self, in_dim: int, targets: Targets, context: TaskContext, *, normalised: bool) -> Any:
        from zoo.tasks.heads import make_head

        head = context.options.head
        return make_head("linear" if normalised else head.kind, in_dim, len(targets.names), hidden=head.hidden,
                         dropout=head.dropout, normalised=normalised)

    def class_weights(self, targets: Targets, options: Any) -> None:
        return None

    def loss(self, targets: Targets, context: TaskContext) -> Any:
        return _SquaredError()

    def judge(self, outputs: Any, values: Any, context: TaskContext) -> Score:
        import numpy as np

        predicted = np.asarray(outputs, dtype=np.float64)
        truth = np.asarray(values, dtype=np.float64)
        record = context.targets_record
        scale, shift = np.asarray(record["std"]), np.asarray(record["mean"])
        scores = _scores(truth * scale + shift, predicted * scale + shift, record["names"])
        return Score(loss=float(((predicted - truth) ** 2).mean()), metric=float(scores[_metric(context)]))

    # ----------------------------------------------------------------- the frozen head

    def cross_validate(self, x: Any, targets: Targets, context: TaskContext, *, seed: int) -> Estimate:
        from zoo.fitting.ridge import cross_validate_ridge

        record = targets.record
        score = cross_validate_ridge(x, targets.values, targets.names, scale=record["std"], shift=record["mean"],
                                     seed=seed, where=context.where)
        scores = {k: v for k, v in score.to_dict().items() if k != "alpha"}
        return Estimate(scores=scores, rank=score.mse, params={"alpha": score.alpha})

    def fit(self, x: Any, targets: Targets, params: Mapping[str, Any], context: TaskContext) -> Any:
        from zoo.fitting.ridge import fit_ridge
        from zoo.tasks.heads import NormalisedLinear

        weight, bias = fit_ridge(x, targets.values, params["alpha"])
        return NormalisedLinear.fitted(weight, bias)

    # ----------------------------------------------------------------- judging the result

    def evaluate(self, outputs: Any, targets: Targets, choices: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np

        record = targets.record
        scale, shift = np.asarray(record["std"]), np.asarray(record["mean"])
        truth = np.asarray(targets.values, dtype=np.float64) * scale + shift
        predicted = np.asarray(outputs, dtype=np.float64) * scale + shift
        report = _scores(truth, predicted, targets.names)
        report["points"] = {"true": truth[:2000].tolist(), "predicted": predicted[:2000].tolist()}  # for the plots
        return report

    def predictions(self, folder: Path, name: str, dataset: Any, outputs: Any, targets: Targets,
                    choices: Mapping[str, Any]) -> None:
        """Each held-out example's numbers and error, for the report page's gallery."""
        import numpy as np

        from zoo.predictions import write_predictions

        record = targets.record
        scale, shift = np.asarray(record["std"]), np.asarray(record["mean"])
        write_predictions(folder, name, dataset, np.asarray(outputs) * scale + shift, targets.names,
                          truth=np.asarray(targets.values) * scale + shift, scale=scale)

    def baseline(self, modality: str, labelled: Any, targets: Targets,
                 held_out: Mapping[str, tuple[Any, Targets]], context: TaskContext, *, seed: int) -> dict[str, Any] | None:
        return _baseline(modality, labelled, targets, held_out, context, seed=seed)

    def compare(self, transfer: Mapping[str, Any], base: dict[str, Any] | None, context: TaskContext) -> str:
        from zoo.tasks.baseline import compare

        metric = _metric(context)
        return compare(dict(transfer), base, metric, _METRIC_NAMES[metric], higher_is_better=self.metrics[metric],
                       points=False)

    def lines(self, metrics: Mapping[str, Any]) -> tuple[str, list[str]]:
        summary = ", ".join(f"{name} RMSE {m['rmse']:.4g} MAE {m['mae']:.4g} R² {m['r2']:.3f} Spearman "
                            f"{m['spearman']:.3f} (n={m['n']})" for name in ("val", "test") if (m := metrics.get(name)))
        lines = []
        head = (metrics.get("cv") or {}).get("head")
        if head:
            lines.append(f"cut {'+'.join(metrics.get('cut', []))}: ridge (alpha {metrics.get('alpha', 0):g}), "
                         f"cross-validated RMSE {head['rmse']:.4g} R² {head['r2']:.3f} over {head['folds']} folds x "
                         f"{head['repeats']}")
        schedule = (metrics.get("cv") or {}).get("schedule") or metrics.get("unfrozen")
        if schedule:
            judged = f"on {schedule['folds']} folds" if schedule.get("folds") else "on the validation split"
            lines.append(f"unfrozen layers {'kept' if schedule['kept'] else 'not kept'}: {schedule['unfrozen']:.4g} vs "
                         f"the head's {schedule['head']:.4g} {judged}")
        base = metrics.get("baseline") or {}
        if base.get("mean"):
            where = next((w for w in ("test", "val", "cv") if base["mean"].get(w)), None)
            if where:
                lines.append(f"mean predictor: {where} RMSE {base['mean'][where]['rmse']:.4g}")
        if metrics.get("baseline_line"):
            lines.append(metrics["baseline_line"])
        return summary, lines

    def plots(self, metrics: Mapping[str, Any], names: Sequence[str], folder: Path) -> list[Path]:
        from zoo.tasks.plots import plot_regression

        return [plot_regression(metrics[name]["points"]["true"], metrics[name]["points"]["predicted"], names,
                                folder / f"regression_{name}.png", name)
                for name in ("val", "test") if metrics.get(name) and metrics[name].get("points")]

    def output(self, targets_record: Mapping[str, Any], choices: Mapping[str, Any]) -> Output:
        return Output(kind="regression", activation="affine",
                      metadata={"targets": list(targets_record["names"]), "scale": list(targets_record["std"]),
                                "shift": list(targets_record["mean"])})


def _metric(context: TaskContext) -> str:
    metric = context.options.plan.metric
    return "rmse" if metric in ("auto", None) else metric


def _scores(truth: Any, predicted: Any, names: Sequence[str]) -> dict[str, Any]:
    from zoo.fitting.ridge import regression_scores

    return regression_scores(truth, predicted, names)


class _SquaredError:
    """Summed squared error on standardised targets (the learner divides by :meth:`weight_of`)."""

    def to(self, device: Any) -> _SquaredError:
        return self

    def __call__(self, outputs: Any, values: Any) -> Any:
        import torch

        return torch.nn.functional.mse_loss(outputs.float(), values.float().reshape(outputs.shape), reduction="sum") / (
            outputs.shape[1] if outputs.dim() > 1 else 1)

    def weight_of(self, values: Any) -> float:
        return float(len(values))


def _baseline(modality: str, labelled: Any, targets: Targets, held_out: Mapping[str, tuple[Any, Targets]],
              context: TaskContext, *, seed: int) -> dict[str, Any] | None:
    """The mean predictor and ridge on the baseline's raw features (:mod:`zoo.tasks.baseline`),
    cross-validated like the head and scored on each held-out set."""
    import time

    import numpy as np

    from zoo.fitting.ridge import cross_validate_ridge, fit_ridge, folds_for_regression, regression_scores
    from zoo.tasks.baseline import LIMIT, raw_features, sampled

    started = time.perf_counter()
    record = targets.record
    scale, shift = np.asarray(record["std"]), np.asarray(record["mean"])
    keep = sampled(len(labelled), None, seed)
    y = targets.values[keep]
    items = [labelled.examples[i].item for i in keep]
    # the mean predictor: the training mean, which is 0 in standardised units; its folds' estimate
    k, repeats = folds_for_regression(len(y), labelled.name)
    from sklearn.model_selection import RepeatedKFold

    folds = [regression_scores(y[test] * scale + shift, np.broadcast_to(y[train].mean(0), y[test].shape) * scale + shift,
                               targets.names)
             for train, test in RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=seed).split(y)]
    mean = {"cv": {key: float(np.mean([f[key] for f in folds])) for key in ("rmse", "mae", "r2", "spearman")}}
    for where, (dataset, truth) in held_out.items():
        if dataset is not None and len(dataset):
            mean[where] = regression_scores(np.asarray(truth.values) * scale + shift,
                                            np.zeros(truth.values.shape) * scale + shift, targets.names)
    raw = raw_features(modality, items, context.spec)
    if raw is None:
        return {"name": "the mean predictor", **mean, "mean": mean}
    name = f"ridge on {raw.name}"
    score = cross_validate_ridge(raw.features, y, targets.names, scale=scale, shift=shift, seed=seed,
                                 featurizer=raw.featurizer, where=labelled.name)
    result: dict[str, Any] = {"name": name, "cv": score.to_dict(), "alpha": score.alpha, "fitted_on": len(keep),
                              "sampled": len(labelled) > LIMIT, "mean": mean}
    for where, (dataset, truth) in held_out.items():
        if dataset is None or not len(dataset):
            continue
        x, x_test = raw.fitted([e.item for e in dataset.examples])
        from zoo.fitting.linear import _normalise

        weight, bias = fit_ridge(x, y, score.alpha)
        predicted = _normalise(x_test) @ weight.T + bias
        result[where] = regression_scores(np.asarray(truth.values) * scale + shift, predicted * scale + shift,
                                          targets.names)
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result
