"""Train / validation / test sets for ``zoo finetune``: explicit files, or a seeded stratified split.

Rules (the training code and its report rely on them):

- The label space is the training data's classes (sorted names); ``val`` and ``test`` data are
  read into it, and a label outside it is a problem.
- Problems in any set raise one :class:`InputError` listing them, unless ``skip_bad``: then the bad
  rows and files are left out and returned in ``Splits.skipped``.
- After that, a training class without a usable example, or fewer than two classes, is an error:
  zoo never trains silently on less than was asked.
- Automatic split: per class of n examples, ``round(n * val_split)`` go to validation, but at least
  one and at most n - 1; a class with a single example goes to training only (it is learned, not
  validated; ``summary()`` shows its 0).
- ``per_class=N`` simulates a small labelled set: per class, N examples for training and
  validation together (split as above inside the N; all N train when ``val`` is given) and every
  other example is the test set (None when none is left; dropped instead when ``test`` is given
  or the data has its own test set).
- Data with its own test set (``Dataset.test``: spoken-digits' unseen voices) is tested on it
  whole; ``test`` replaces it.
  A class with fewer than N examples is an error.
- Which examples go where depends only on the seed and the data: each class draws from its own
  ``numpy`` generator seeded with ``(seed, sha256(class name))``, so adding a class or examples of
  another class does not reshuffle this one, and Python's hash randomisation plays no part.
  Within a set, examples keep the order of the data.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.data.checks import problems_error
from zoo.data.dataset import Dataset, Example, Problem
from zoo.data.opening import _open, check_modality
from zoo.errors import InputError

__all__ = ["Splits", "make_splits", "n_val"]


@dataclass(frozen=True)
class Splits:
    """The sets of one fine-tuning run, sharing one label space (``train.classes``)."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    skipped: tuple[Problem, ...] = ()  # what skip_bad left out, all sets

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the classes, each set's size and per-class counts, and how many were skipped."""

        def part(dataset: Dataset | None) -> dict[str, Any] | None:
            if dataset is None:
                return None
            return {"size": len(dataset), "per_class": dataset.counts()}

        return {"classes": list(self.classes), "train": part(self.train), "val": part(self.val),
                "test": part(self.test), "skipped": len(self.skipped)}


def n_val(n: int, val_split: float) -> int:
    """Validation examples for a class of ``n``: round half up, at least 1 and at most n - 1 (0 if n < 2)."""
    if n < 2:
        return 0
    return min(n - 1, max(1, math.floor(n * val_split + 0.5)))


def make_splits(data: str | Path, *, modality: str, val: str | Path | None = None,
                test: str | Path | None = None, val_split: float = 0.2, per_class: int | None = None,
                seed: int = 0, skip_bad: bool = False, format: str | None = None, by_class: bool = True,
                column: str | None = None, problem: Callable[[Example], str | None] | None = None) -> Splits:
    """Read ``data`` (and ``val`` / ``test`` when given) and make the sets; see the module's rules.

    ``format`` names the dataset format for all three instead of detecting it. ``by_class=False``
    (a regression, a multi-label run): the sets are drawn from all examples as one group, and no
    class rule applies. ``column``: the classes are the values of this manifest column rather than
    its ``label`` column (``--target``). ``problem``: why an example is unusable for the task (a
    target that is not a number), which makes it a bad row like any other.
    """
    check_modality(modality)
    _check_arguments(val, val_split, per_class, seed)
    if per_class is not None and not by_class:
        raise InputError("--per-class counts examples per class, and this run has no classes; hold data out with "
                         "--test or --val-split")
    pool = _relabelled(_open(data, modality=modality, classes=None, format=format), column, None)
    # without classes (a regression, label sets) a held-out set is read as it is: its task reads its targets
    fixed = pool.classes if column is None and by_class else None
    extra = {role: _relabelled(_open(path, modality=modality, classes=fixed, format=format,
                                     known_as="the training classes"), column, pool.classes)
             for role, path in (("val", val), ("test", test)) if path is not None}
    own_test = pool.test if "test" not in extra else None  # the data's own test set, unless --test replaces it
    if problem is not None:
        pool, own_test = _checked(pool, problem), _checked(own_test, problem)
        extra = {role: _checked(dataset, problem) for role, dataset in extra.items()}
    problems = (*pool.problems, *(own_test.problems if own_test is not None else ()),
                *(p for dataset in extra.values() for p in dataset.problems))
    if problems and not skip_bad:
        raise problems_error(problems)
    if by_class:
        _require_classes(pool, data, len(pool.problems))
    elif not len(pool):
        raise InputError(f"{data}: no usable example{_after(len(pool.problems))}; fix the data")
    for role, dataset in extra.items():
        if not len(dataset):
            raise InputError(f"the {'validation' if role == 'val' else 'test'} data {str(dataset.name)!r} "
                             f"has no usable example{_after(len(dataset.problems))}; fix it or leave it out")

    train, chosen_val, rest = _select(pool, val_split, per_class, seed, split_val="val" not in extra, data=data,
                                      by_class=by_class)
    val_set = extra.get("val") or pool.subset(chosen_val, f"{pool.name} [val]")
    if not len(val_set):
        how = f"per_class={per_class} leaves" if per_class is not None else "every class has one example, leaving"
        raise InputError(f"{data}: {how} no validation example; give more examples per class or "
                         f"validation data (--val)")
    test_set = extra.get("test") or own_test
    if test_set is None and per_class is not None and rest:
        test_set = pool.subset(rest, f"{pool.name} [test]")
    return Splits(pool.subset(train, f"{pool.name} [train]"), val_set, test_set, problems)


def _check_arguments(val: object, val_split: float, per_class: int | None, seed: int) -> None:
    if val is None and not 0 < val_split < 1:
        raise InputError(f"val_split must be between 0 and 1 (exclusive), got {val_split!r}; or give "
                         f"validation data (--val)")
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int)
                                  or per_class < 1):
        raise InputError(f"per_class must be a whole number of at least 1, got {per_class!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a whole number of at least 0, got {seed!r}")


def _after(skipped: int) -> str:
    return f" after skipping {skipped} bad {'one' if skipped == 1 else 'ones'}" if skipped else ""


def _require_classes(pool: Dataset, data: str | Path, skipped: int) -> None:
    empty = [name for name, count in pool.counts().items() if count == 0]
    if empty:
        names = ", ".join(repr(name) for name in empty)
        raise InputError(f"{data}: class{'es' if len(empty) > 1 else ''} {names} "
                         f"{'have' if len(empty) > 1 else 'has'} no usable example{_after(skipped)}; "
                         f"add examples or remove the class")
    if len(pool.classes) < 2:
        found = ", ".join(repr(name) for name in pool.classes) or "none"
        raise InputError(f"{data}: {len(pool.classes)} class{'' if len(pool.classes) == 1 else 'es'} "
                         f"found ({found}){_after(skipped)}; training needs at least two classes")


def _select(pool: Dataset, val_split: float, per_class: int | None, seed: int, *, split_val: bool,
            data: str | Path, by_class: bool = True) -> tuple[list[int], list[int], list[int]]:
    """Indices into ``pool`` for (train, val, rest), each in data order; without classes, all
    examples as one group (named ``""`` for its seed)."""
    import numpy as np

    groups: list[list[int]] = [[] for _ in pool.classes] if by_class else [[]]
    for i, example in enumerate(pool.examples):
        groups[example.label if by_class else 0].append(i)
    train: list[int] = []
    val: list[int] = []
    rest: list[int] = []
    for name, indices in zip(pool.classes if by_class else ("",), groups):
        if per_class is not None and len(indices) < per_class:
            raise InputError(f"{data}: per_class={per_class}, but class {name!r} has only "
                             f"{len(indices)} example{'' if len(indices) == 1 else 's'}; lower "
                             f"--per-class or add examples")
        rng = np.random.default_rng([seed, _class_key(name)])
        order = [indices[i] for i in rng.permutation(len(indices))]
        chosen, others = (order, []) if per_class is None else (order[:per_class], order[per_class:])
        k = n_val(len(chosen), val_split) if split_val else 0
        val += chosen[:k]
        train += chosen[k:]
        rest += others
    return sorted(train), sorted(val), sorted(rest)


def _class_key(name: str) -> int:
    """A stable 64-bit number for a class name (Python's ``hash`` changes per process)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def _relabelled(dataset: Dataset, column: str | None, classes: tuple[str, ...] | None) -> Dataset:
    """``dataset`` with its classes read from ``column`` (the values, sorted; or ``classes``, the
    training data's, for a held-out set); a row whose value is empty or unknown is a problem."""
    if column is None or column == "label":
        return dataset
    if dataset.examples and all(e.fields is None for e in dataset.examples):
        raise InputError(f"{dataset.name}: --target {column} names a manifest column, and this data has none (a "
                         f"folder's classes are its subfolders); leave out --target")
    values = {i: str(v).strip() for i, v in enumerate(dataset.column(column)) if v is not None and str(v).strip()}
    names = classes if classes is not None else tuple(sorted(set(values.values())))
    index = {name: i for i, name in enumerate(names)}
    examples, problems = [], list(dataset.problems)
    for i, example in enumerate(dataset.examples):
        value = values.get(i)
        if value is None:
            problems.append(Problem(example.where, f"missing {column!r}"))
        elif value not in index:
            problems.append(Problem(example.where, f"{column} {value!r} is not among the training classes"))
        else:
            examples.append(Example(example.item, index[value], example.where, example.fields))
    return Dataset(dataset.name, dataset.modality, names, tuple(examples), tuple(problems), dataset.test)


def _checked(dataset: Dataset | None, problem: Callable[[Example], str | None]) -> Dataset | None:
    """``dataset`` without the examples ``problem`` finds unusable, which become its problems."""
    if dataset is None:
        return None
    kept, problems = [], list(dataset.problems)
    for example in dataset.examples:
        why = problem(example)
        if why is None:
            kept.append(example)
        else:
            problems.append(Problem(example.where, why))
    return Dataset(dataset.name, dataset.modality, dataset.classes, tuple(kept), tuple(problems),
                   _checked(dataset.test, problem))
