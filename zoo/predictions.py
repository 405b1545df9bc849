"""``report/predictions.jsonl``: the run's prediction for every held-out example, one JSON line each.

It lives below both its writers (the tasks, as they score each held-out set) and its reader (the
report page), so neither imports the other.

The page's gallery (the worst test examples) and its heatmaps are drawn from this file alone, so
the trainer writes it once, as it scores each held-out set (:func:`write_predictions`), and the
report reads it (:func:`read_predictions`). One line::

    {"set": "test", "index": 12, "where": "photos:test/birds/crow.png",
     "item": {"path": "/abs/crow.png"} | {"text": "..."} | {"image": "report/items/test-00012.png"},
     "true": "birds", "predicted": "mammals", "score": 0.91, "true_score": 0.05, "correct": false,
     "probabilities": [0.01, 0.05, ...]}

- ``set``: ``val`` or ``test``; ``index``: the example's position in that set; ``where``: the
  dataset's own name for it (file and row, ``digits[123]``);
- ``item``: how to find what the model saw: a file's absolute path (images, clips), the text
  itself (cut at :data:`TEXT_LIMIT` characters, ``"cut": true``), or, for an in-memory image (an
  array: the digits demo), a lossless PNG under ``report/items/`` written for the examples the page
  shows (:func:`picks`) and ``null`` for the others;
- single-label: ``true`` and ``predicted`` are class names, ``score`` the probability of the
  predicted class, ``true_score`` that of the true one, ``probabilities`` in ``labels.json``'s order;
- multi-label (``thresholds`` given): ``true`` and ``predicted`` are lists of label names,
  ``probabilities`` each label's sigmoid, ``correct`` an exact match, and ``score`` the mean over
  labels of the probability given to the decision taken (p over the threshold, 1 - p under it);
- regression (``values`` given): ``true`` and ``predicted`` map each target to its number (in the
  target's units), ``score`` is the error in standard deviations (the largest over targets), and
  ``correct`` says it is within :data:`CLOSE` of them; no ``probabilities``;
- other tasks (dense) will write their own ``true`` / ``predicted`` values the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PREDICTIONS", "ITEMS", "TEXT_LIMIT", "GALLERY", "HEATMAPS", "Picks", "write_predictions",
           "write_prediction_lines", "read_predictions", "picks"]

PREDICTIONS = Path("report") / "predictions.jsonl"
#: In-memory images the page shows, saved as lossless PNG files.
ITEMS = Path("report") / "items"
#: A text longer than this is stored cut (the page shows a few lines of it).
TEXT_LIMIT = 1000
#: How many examples each row of the gallery shows (mistakes; unsure right ones).
GALLERY = 12
#: How many wrong and how many right examples get a heatmap.
HEATMAPS = 4
#: A regression's prediction within this many of the target's standard deviations counts as close.
CLOSE = 0.25


@dataclass(frozen=True)
class Picks:
    """What the page shows from one held-out set: the most confident mistakes, the least confident
    right predictions, and the most confident right ones (the heatmaps' right half)."""

    mistakes: tuple[dict[str, Any], ...]
    unsure: tuple[dict[str, Any], ...]
    sure: tuple[dict[str, Any], ...]

    def shown(self) -> list[dict[str, Any]]:
        """Every picked line once (in mistakes, unsure, sure order)."""
        seen: dict[int, dict[str, Any]] = {}
        for row in (*self.mistakes, *self.unsure, *self.sure):
            seen.setdefault(row["index"], row)
        return list(seen.values())


def picks(rows: Sequence[dict[str, Any]], count: int = GALLERY, heatmaps: int = HEATMAPS) -> Picks:
    """The lines of one set the page shows; ties keep the set's order (stable sorts). A
    regression's lines are errors: the largest first, then the closest predictions."""
    wrong = [row for row in rows if not row.get("correct")]
    right = [row for row in rows if row.get("correct")]
    if rows and "probabilities" not in rows[0]:  # numbers: a score is an error, not a confidence
        return Picks(mistakes=tuple(sorted(wrong, key=lambda row: -row["score"])[:count]),
                     unsure=tuple(sorted(right, key=lambda row: row["score"])[:count]), sure=())
    return Picks(mistakes=tuple(sorted(wrong, key=lambda row: -row["score"])[:count]),
                 unsure=tuple(sorted(right, key=lambda row: row["score"])[:count]),
                 sure=tuple(sorted(right, key=lambda row: -row["score"])[:heatmaps]))


def _reference(item: Any, modality: str) -> dict[str, Any]:
    if modality == "text" and isinstance(item, str):
        return {"text": item[:TEXT_LIMIT], "cut": True} if len(item) > TEXT_LIMIT else {"text": item}
    if isinstance(item, (str, Path)):
        return {"path": str(Path(item).resolve())}
    return {"image": None}  # an array: saved below when the page shows it


def _lines(set_name: str, dataset: Any, probabilities: Any, classes: Sequence[str], thresholds: Any,
           truth: Any) -> list[dict[str, Any]]:
    import numpy as np

    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (len(dataset), len(classes)):
        raise ValueError(f"probabilities of shape {p.shape} for {len(dataset)} examples and {len(classes)} classes")
    lines = []
    for i, example in enumerate(dataset.examples):
        line: dict[str, Any] = {"set": set_name, "index": i, "where": example.where,
                                "item": _reference(example.item, dataset.modality)}
        row = p[i]
        if thresholds is not None:
            limits = np.asarray([thresholds[name] for name in classes], dtype=np.float64)
            on = row >= limits
            wanted = np.asarray(truth[i], dtype=bool)
            line.update(true=[c for c, t in zip(classes, wanted) if t], predicted=[c for c, o in zip(classes, on) if o],
                        score=float(np.where(on, row, 1 - row).mean()), correct=bool((on == wanted).all()))
        else:
            chosen = int(row.argmax())
            line.update(true=classes[example.label], predicted=classes[chosen], score=float(row[chosen]),
                        true_score=float(row[example.label]), correct=chosen == example.label)
        line["probabilities"] = [round(float(v), 6) for v in row]
        lines.append(line)
    return lines


def _value_lines(set_name: str, dataset: Any, predicted: Any, names: Sequence[str], truth: Any,
                 scale: Any) -> list[dict[str, Any]]:
    import numpy as np

    p = np.asarray(predicted, dtype=np.float64).reshape(len(dataset), -1)
    t = np.asarray(truth, dtype=np.float64).reshape(len(dataset), -1)
    errors = np.abs(p - t) / np.asarray(scale, dtype=np.float64)
    lines = []
    for i, example in enumerate(dataset.examples):
        worst = float(errors[i].max())
        lines.append({"set": set_name, "index": i, "where": example.where,
                      "item": _reference(example.item, dataset.modality),
                      "true": ", ".join(f"{n} {v:.4g}" for n, v in zip(names, t[i])),
                      "predicted": ", ".join(f"{n} {v:.4g}" for n, v in zip(names, p[i])),
                      "values": {"true": dict(zip(names, t[i].tolist())), "predicted": dict(zip(names, p[i].tolist()))},
                      "score": round(worst, 6), "correct": worst <= CLOSE})
    return lines


def write_predictions(run_dir: str | Path, set_name: str, dataset: Any, probabilities: Any, classes: Sequence[str],
                      *, thresholds: dict[str, float] | None = None, truth: Any = None, scale: Any = None) -> Path:
    """Record the run's predictions on one held-out set (``val`` or ``test``) in
    ``report/predictions.jsonl``, replacing that set's earlier lines (a resumed run writes them
    again) and keeping the other sets'.

    ``dataset``: a :class:`zoo.data.Dataset` (its examples in the order of ``probabilities``);
    ``probabilities``: an (examples, classes) array: softmax rows, or each label's sigmoid for a
    multi-label run, which also gives ``thresholds`` (label -> threshold) and ``truth`` (an
    (examples, labels) 0/1 matrix, in ``classes`` order). A regression gives its predicted numbers
    (examples, targets) with ``truth`` (the true numbers) and ``scale`` (each target's standard
    deviation), ``classes`` naming the targets. In-memory images the page will show are
    saved under ``report/items/`` as lossless PNG files.
    """
    from zoo.atomic import atomic_write_bytes, ensure_folder

    folder = Path(run_dir)
    lines = (_value_lines(set_name, dataset, probabilities, classes, truth, scale) if scale is not None
             else _lines(set_name, dataset, probabilities, classes, thresholds, truth))
    arrays = [line for line in picks(lines).shown() if "image" in line["item"]]
    if arrays:
        import io

        import numpy as np
        from PIL import Image

        ensure_folder(folder / ITEMS, "choose a writable --out")
        for line in arrays:
            relative = ITEMS / f"{set_name}-{line['index']:05d}.png"
            out = io.BytesIO()
            Image.fromarray(np.asarray(dataset.examples[line["index"]].item, dtype=np.uint8)).save(out, format="PNG")
            atomic_write_bytes(folder / relative, out.getvalue())
            line["item"] = {"image": relative.as_posix()}
    return write_prediction_lines(folder, set_name, lines)


def write_prediction_lines(run_dir: str | Path, set_name: str, lines: Sequence[dict[str, Any]]) -> Path:
    """``lines`` as one held-out set's in ``report/predictions.jsonl``, replacing that set's
    earlier lines and keeping the other sets' (a task that writes its own lines: a detector's
    boxes; each with ``set``, ``index``, ``where``, ``item``, ``score``, ``correct``)."""
    from zoo.atomic import atomic_write_bytes

    folder = Path(run_dir)
    kept = [row for row in _read_lines(folder / PREDICTIONS) if row.get("set") != set_name]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in [*kept, *lines])
    return atomic_write_bytes(folder / PREDICTIONS, text.encode("utf-8"))


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break  # a torn last line: what came before it stands
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_predictions(run_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Set name -> its lines in index order (empty when the run wrote none); lines without the
    keys the page needs are left out."""
    sets: dict[str, list[dict[str, Any]]] = {}
    for row in _read_lines(Path(run_dir) / PREDICTIONS):
        if isinstance(row.get("set"), str) and isinstance(row.get("index"), int) and isinstance(
                row.get("score"), (int, float)) and isinstance(row.get("item"), dict):
            sets.setdefault(row["set"], []).append(row)
    return {name: sorted(rows, key=lambda row: row["index"]) for name, rows in sets.items()}
