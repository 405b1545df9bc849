"""The honest baseline every report states: what a tuned simple model does without transfer.

Its features are the simplest a person would try on the raw data: images resized to 16 x 16 RGB
(768 numbers); texts as TF-IDF of words and word pairs (sublinear term frequency), fitted inside
each fold on that fold's training texts only; sounds (through a front end) the front end's own
simple features (MFCC statistics for log-mel), standardised inside each fold. Each task fits its
own simple model on them (a logistic regression, one per label, or ridge regression), chosen and
scored by the same cross-validation as its transfer head, and, when data is held out, fitted on
all labelled examples and scored there: so the line "transfer beat the baseline by N points"
compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RawFeatures", "raw_features", "PIXELS", "LIMIT", "pixel_features", "tfidf_vectorizer", "sampled",
           "compare"]

#: Images are resized to this square for the pixel baseline.
PIXELS = 16
#: Above this many labelled examples the baseline is fitted on a seeded sample of this size: it is
#: a yardstick, and its nested cross-validation grows with the data.
LIMIT = 3000


def pixel_features(items: Sequence[Any]) -> Any:
    import numpy as np
    from PIL import Image

    from zoo.preprocess import open_image

    rows = [np.asarray(open_image(item).convert("RGB").resize((PIXELS, PIXELS), Image.BILINEAR), dtype=np.float32)
            for item in items]
    return np.stack(rows).reshape(len(rows), -1) / 255.0


def tfidf_vectorizer() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)


def _standardised() -> Any:
    from sklearn.preprocessing import StandardScaler

    return StandardScaler()


@dataclass(frozen=True)
class RawFeatures:
    """The baseline's view of the labelled items: ``features`` (a matrix, or the raw texts when a
    ``featurizer`` fits inside each fold), and how held-out items are turned into the same features
    after a fit on all labelled ones (:meth:`fitted`)."""

    name: str
    features: Any
    featurizer: Callable[[], Any] | None
    held_out: Callable[[Sequence[Any]], Any]

    def matrix(self) -> Any:
        """The labelled items' features as one matrix (a featurizer fitted on all of them)."""
        return self.features if self.featurizer is None else _dense(self.featurizer().fit_transform(self.features))

    def fitted(self, held_out_items: Sequence[Any]) -> tuple[Any, Any]:
        """(labelled, held-out) feature matrices for a final fit on every labelled item (a
        featurizer is fitted on the labelled items only)."""
        if self.featurizer is None:
            return self.features, self.held_out(held_out_items)
        made = self.featurizer()
        return _dense(made.fit_transform(self.features)), _dense(made.transform(self.held_out(held_out_items)))


def _dense(matrix: Any) -> Any:
    return matrix.toarray() if hasattr(matrix, "toarray") else matrix


def raw_features(modality: str, items: Sequence[Any], spec: Any = None) -> RawFeatures | None:
    """The baseline's features of ``items`` (see the module); None for data without one."""
    front_end = spec is not None and getattr(spec, "front_end", None) is not None
    if front_end:
        from zoo.frontend import baseline as front_end_baseline

        made = front_end_baseline(list(items), spec)
        if made is None:
            return None
        return RawFeatures(made[0], list(made[1]), _standardised,
                           lambda test: front_end_baseline(list(test), spec)[1])
    if modality == "image":
        return RawFeatures(f"raw pixels ({PIXELS}x{PIXELS} RGB)", pixel_features(items), None, pixel_features)
    if modality == "text":
        return RawFeatures("TF-IDF (words and pairs)", list(items), tfidf_vectorizer, list)
    return None


def sampled(count: int, strata: Any, seed: int) -> Any:
    """The positions a baseline is fitted on: every one, or a seeded (stratified) sample of
    :data:`LIMIT` when there are more."""
    import numpy as np

    if count <= LIMIT:
        return np.arange(count)
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(count), train_size=LIMIT, stratify=strata, random_state=seed)
    return np.sort(keep)


def compare(transfer: dict[str, Any], base: dict[str, Any] | None, key: str, label: str, *,
            higher_is_better: bool = True, points: bool = True) -> str:
    """One plain line: did transfer beat the baseline, on which estimate (test, validation or
    cross-validated), by how much. ``points``: the gap in percentage points (accuracies), else in
    the metric's own units."""
    if base is None:
        return "baseline: none for this modality"
    where = next((w for w in ("test", "val", "cv") if transfer.get(w) and base.get(w)), None)
    if where is None:
        return f"baseline ({base['name']}): no estimate to compare with"
    mine, theirs = transfer[where][key], base[where][key]
    gap = (mine - theirs) * (1 if higher_is_better else -1)
    shown = f"{100 * abs(gap):.1f} points" if points else f"{abs(gap):.4g}"
    what = {"test": "test", "val": "validation", "cv": "cross-validated"}[where]
    verdict = (f"transfer beat it by {shown}" if gap > 0 else "transfer did NOT beat it (equal)" if gap == 0 else
               f"transfer did NOT beat it: {shown} worse")
    return f"baseline ({base['name']}): {what} {label} {theirs:.3f} vs transfer {mine:.3f}; {verdict}"


#: :func:`compare` under the name the public API gives it (``zoo.baseline_line``): a task plugin's
#: baseline line reads like the built-in tasks'.
baseline_line = compare
