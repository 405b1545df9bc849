"""The honest baseline every report states: what a tuned simple model does without transfer.

Sounds (through a front end): the front end's own simple features (MFCC statistics for log-mel),
standardised inside each fold. Images: the raw pixels, resized to 16 x 16 RGB (768 numbers), in the same cross-validated
logistic regression as the transfer head. Text: TF-IDF of words and word pairs (sublinear term
frequency), fitted inside each fold on that fold's training texts only, in the same logistic
regression. Both are cross-validated exactly like the head (:func:`zoo.probing.cross_validate`)
and, when a test set is held out, fitted on all labelled examples and scored there, so the line
"transfer beat the baseline by N points" compares like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["baseline", "PIXELS", "compare", "pixel_features", "tfidf_vectorizer"]

#: Images are resized to this square for the pixel baseline.
PIXELS = 16
#: Above this many labelled examples the baseline is fitted on a stratified sample of this size
#: (seeded): it is a yardstick, and its nested cross-validation grows with the data.
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


def baseline(modality: str, labelled: Any, held_out: dict[str, Any] | None = None, *, seed: int = 0,
             class_weight: str | None = None, metric: str = "accuracy", spec: Any = None) -> dict[str, Any] | None:
    """The baseline's cross-validated estimate on ``labelled``, and, for each named held-out set
    (``{"test": dataset}``), its accuracy and macro-F1 there after a fit on all of ``labelled``;
    None for a modality without one.

    ``spec``: the backbone's input spec; with a front end (sounds), the front end's own simple
    features (MFCCs for the log-mel one), standardised inside each fold, are the baseline."""
    import time

    import numpy as np

    from zoo.probing.linear import UNTUNED_C, cross_validate, fit_probe

    started = time.perf_counter()
    sampled = len(labelled) > LIMIT
    if sampled:
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(labelled)), train_size=LIMIT, stratify=labelled.labels,
                                   random_state=seed)
        labelled = labelled.subset(sorted(keep.tolist()))
    items = [e.item for e in labelled.examples]
    y = np.asarray(labelled.labels)
    front_end = spec is not None and getattr(spec, "front_end", None) is not None
    if front_end:
        from zoo.frontend import baseline as front_end_baseline

        made = front_end_baseline(items, spec)
        if made is None:
            return None
        name, features, featurizer = made[0], list(made[1]), _standardised
    elif modality == "image":
        name = f"logistic regression on raw pixels ({PIXELS}x{PIXELS} RGB)"
        features, featurizer = pixel_features(items), None
    elif modality == "text":
        name = "TF-IDF (words and pairs) + logistic regression"
        features, featurizer = items, tfidf_vectorizer
    else:
        return None
    from zoo.errors import InputError

    try:
        score = cross_validate(features, y, seed=seed, class_weight=class_weight, metric=metric,
                               featurizer=featurizer, where=labelled.name)
        cv, C, note = score.to_dict(), score.C, None
    except InputError as exc:  # a class with one example: no folds, so C is not chosen
        cv, C, note = None, UNTUNED_C, f"not cross-validated ({exc}); C={UNTUNED_C:g}"
    result: dict[str, Any] = {"name": name, "cv": cv, "fitted_on": len(labelled), "sampled": sampled, "note": note}
    for where, dataset in (held_out or {}).items():
        if dataset is None or not len(dataset):
            continue
        test_items = [e.item for e in dataset.examples]
        if front_end:
            scaler = _standardised()
            x, x_test = scaler.fit_transform(np.stack(features)), scaler.transform(front_end_baseline(test_items, spec)[1])
        elif modality == "image":
            x, x_test = features, pixel_features(test_items)  # the training pixels read once, above
        else:
            vectorizer = tfidf_vectorizer()
            x, x_test = vectorizer.fit_transform(items).toarray(), vectorizer.transform(test_items).toarray()
        predicted = fit_probe(x, y, C, class_weight=class_weight).predict(x_test)
        from sklearn.metrics import accuracy_score, f1_score

        truth = np.asarray(dataset.labels)
        result[where] = {"accuracy": float(accuracy_score(truth, predicted)),
                         "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
                         "n": len(truth)}
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


#: The estimate a baseline line compares, by --metric (micro_f1: multi-label runs): key, shown as.
_COMPARED = {"accuracy": ("accuracy", "accuracy"), "macro_f1": ("macro_f1", "macro-F1"),
             "micro_f1": ("micro_f1", "micro-F1")}


def compare(transfer: dict[str, Any], base: dict[str, Any] | None, metric: str) -> str:
    """One plain line: did transfer beat the baseline, on which estimate, by how much."""
    if base is None:
        return "baseline: none for this modality"
    key, label = _COMPARED[metric]
    where = next((w for w in ("test", "val", "cv") if transfer.get(w) and base.get(w)), None)
    if where is None:
        return f"baseline ({base['name']}): no estimate to compare with"
    mine, theirs = transfer[where][key], base[where][key]
    gap = 100 * (mine - theirs)
    what = {"test": "test", "val": "validation", "cv": "cross-validated"}[where]
    verdict = (f"transfer beat it by {gap:.1f} points" if gap > 0 else
               "transfer did NOT beat it (equal)" if gap == 0 else
               f"transfer did NOT beat it: {-gap:.1f} points worse")
    return f"baseline ({base['name']}): {what} {label} {theirs:.3f} vs transfer {mine:.3f}; {verdict}"
