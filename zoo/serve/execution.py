"""One batch of one model: every request's inputs preprocessed, the graph run once per shape,
each request answered with its own rows. Runs in the worker thread, never on the event loop.

- Images (and clips) all have the model's input size: one onnxruntime call for the batch.
- Texts are tokenized together, then run longest first in groups of about :data:`TOKENS_PER_CALL`
  tokens, each group padded to its own longest text (as the frozen pass orders texts), so one long
  text does not make every short one pay for its padding.
- Tensors sent through KServe v2 run with the others of the same shape.

A request whose input is bad fails alone: the rest of its batch runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError
from zoo.serve.errors import RequestError, bad_request
from zoo.serve.inputs import Item, encode

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from zoo.serve.models import ServedModel

__all__ = ["Work", "BatchReport", "run_batch", "TOKENS_PER_CALL"]

#: Tokens per onnxruntime call for texts: MiniLM on CPU ran fastest per token at about 1,000 tokens
#: a call (the frozen pass's measurement, zoo/frozen/passes.py), e.g. 32 texts of 32 tokens.
TOKENS_PER_CALL = 1024


def _rows(rows: Any) -> Any:
    return rows


@dataclass
class Work:
    """One request's share of a batch: raw ``items`` (preprocessed here) or ready ``feeds``, and
    ``finish``, which turns its output rows into its answer (in the worker thread too)."""

    size: int
    items: Sequence[Item] | None = None
    feeds: dict[str, np.ndarray] | None = None
    finish: Callable[[np.ndarray], Any] = _rows


@dataclass
class BatchReport:
    """What a batch cost, for the metrics."""

    items: int = 0
    calls: int = 0
    prepare_s: float = 0.0
    run_s: float = 0.0
    results: list[Any] = field(default_factory=list)  # per work: its answer or the exception it raised


def run_batch(served: ServedModel, works: Sequence[Work], *, max_pixels: int) -> BatchReport:
    """Answers for ``works`` (in order), each an answer or an exception. Decoding runs on this
    thread, while the graph is not running (two threads decoding a batch of digits were slower
    than one here: PIL and numpy hold the GIL for much of it)."""
    import numpy as np

    report = BatchReport(items=sum(w.size for w in works))
    try:
        served.guard.check_cheap(served.name)
    except RequestError as exc:
        report.results = [exc] * len(works)
        return report
    model = served.model
    results: list[Any] = [None] * len(works)
    outputs: list[np.ndarray | None] = [None] * len(works)
    started = time.perf_counter()
    texts: list[tuple[int, int, str]] = []  # (work, row, text)
    tensors: dict[int, dict[str, np.ndarray]] = {}
    for w, work in enumerate(works):
        if work.feeds is not None:
            tensors[w] = work.feeds
        elif model.info.modality == "text":
            texts += [(w, r, item.text or "") for r, item in enumerate(work.items or ())]
        else:
            outcome = _encoded(model, work.items or (), max_pixels)
            if isinstance(outcome, RequestError):
                results[w] = outcome
            else:
                tensors[w] = outcome
    report.prepare_s = time.perf_counter() - started
    started = time.perf_counter()
    if texts:
        _run_texts(served, texts, works, outputs, report)
    for group in _same_shape(tensors):
        _run_group(model, group, tensors, works, outputs, results, report)
    report.run_s = time.perf_counter() - started
    for w, work in enumerate(works):
        if results[w] is None:
            try:
                results[w] = work.finish(outputs[w])
            except Exception as exc:  # noqa: BLE001 - handed to that request, whose handler re-raises it
                results[w] = exc
    report.results = results
    return report


def _encoded(model: Any, items: Sequence[Item], max_pixels: int) -> Any:
    """One request's feeds, or the RequestError that is its answer."""
    try:
        return encode(model, items, max_pixels=max_pixels)
    except RequestError as exc:
        return exc
    except InputError as exc:
        return bad_request(str(exc))


def _run_group(model: Any, group: list[int], tensors: dict[int, dict[str, Any]], works: Sequence[Work],
               outputs: list[Any], results: list[Any], report: BatchReport) -> None:
    """One call for works of one shape. If onnxruntime refuses it (tensors a client sent with a
    token id beyond the vocabulary, say), each work runs alone so only the bad one fails."""
    import numpy as np

    feeds = {name: np.concatenate([tensors[w][name] for w in group]) for name in tensors[group[0]]}
    try:
        rows = model.run(feeds)
        report.calls += 1
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes
        if len(group) > 1:
            for w in group:
                _run_group(model, [w], tensors, works, outputs, results, report)
            return
        w = group[0]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        results[w] = bad_request(f"onnxruntime cannot run these inputs ({first})") if works[w].feeds is not None \
            else exc
        return
    start = 0
    for w in group:
        outputs[w] = rows[start:start + works[w].size]
        start += works[w].size


def _same_shape(tensors: dict[int, dict[str, Any]]) -> list[list[int]]:
    """Works whose feeds can be stacked (same names, dtypes, and shapes past the batch axis)."""
    groups: dict[tuple, list[int]] = {}
    for w, feeds in tensors.items():
        key = tuple(sorted((n, str(a.dtype), a.shape[1:]) for n, a in feeds.items()))
        groups.setdefault(key, []).append(w)
    return list(groups.values())


def _run_texts(served: ServedModel, texts: list[tuple[int, int, str]], works: Sequence[Work],
               outputs: list[Any], report: BatchReport) -> None:
    """Every text of the batch tokenized once, run longest first in groups of about
    TOKENS_PER_CALL tokens, each cut to its own longest text, and put back in order."""
    import numpy as np

    model = served.model
    feeds = model.encode([text for _, _, text in texts])
    mask = feeds["attention_mask"]
    lengths = mask.sum(axis=1)
    order = np.argsort(-lengths, kind="stable")
    left = (model.encode.tokenizer.padding or {}).get("direction") == "left"
    rows = np.empty((len(texts), 0), dtype=np.float32)
    start = 0
    while start < len(order):
        longest = max(1, int(lengths[order[start]]))
        chosen = order[start:start + max(1, TOKENS_PER_CALL // longest)]
        columns = slice(mask.shape[1] - longest, None) if left else slice(0, longest)
        part = model.run({name: array[chosen][:, columns] for name, array in feeds.items()})
        report.calls += 1
        if rows.shape[1] == 0:
            rows = np.empty((len(texts), part.shape[1]), dtype=part.dtype)
        rows[chosen] = part
        start += len(chosen)
    spans: dict[int, list[int]] = {}
    for index, (w, _, _) in enumerate(texts):
        spans.setdefault(w, []).append(index)
    for w, indices in spans.items():
        outputs[w] = rows[indices]
