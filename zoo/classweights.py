"""Class weights for an imbalanced training set: each class counts as much as the others.

With a few labels per class, a class three times as large as another pulls the head towards it;
"balanced" weights (scikit-learn's rule: ``n / (k * n_c)``) undo that in the training and the
validation loss alike, so the epoch chosen is the one best on every class.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoo.errors import ZooError

__all__ = ["CLASS_WEIGHTS", "IMBALANCE", "class_weights"]

CLASS_WEIGHTS = ("auto", "balanced", "none")
#: ``auto`` balances when the largest training class has more than this many times the
#: examples of the smallest.
IMBALANCE = 3.0


def class_weights(counts: Sequence[int], rule: str) -> list[float] | None:
    """Per-class loss weights for these training counts, or None for plain (unweighted) loss."""
    if rule not in CLASS_WEIGHTS:
        raise ZooError(f"--class-weight takes {', '.join(CLASS_WEIGHTS)}, got {rule!r}")
    present = [c for c in counts if c > 0]
    if rule == "none" or not present:
        return None
    if rule == "auto" and max(present) <= IMBALANCE * min(present):
        return None
    total, k = sum(present), len(present)
    return [total / (k * c) if c > 0 else 0.0 for c in counts]
