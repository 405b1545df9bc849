"""Validation, part of every export: onnxruntime must give PyTorch's outputs on real inputs.

Both run on the same encoded batches (the runtime's own preprocessing, so the deployed path is
the one checked), in batches of 1 and of up to 8 (so the dynamic axes are exercised at sizes
other than the traced one). The export fails when any element differs by more than
``atol + rtol * |reference|`` (numpy's ``allclose`` rule), naming the largest absolute and
relative differences. A graph that ends by scaling its outputs into a user's units (a regression:
standardised numbers times each target's spread) is judged in the units it computed in: the
absolute tolerance of each output column is ``atol * scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from zoo.errors import ValidationError, ZooError

__all__ = ["Validation", "ValidationError", "compare", "validate", "ATOL", "RTOL"]

ATOL = 1e-4
RTOL = 1e-3


@dataclass(frozen=True)
class Validation:
    """The outcome of one comparison."""

    samples: int
    batches: tuple[int, ...]
    max_abs_diff: float
    max_rel_diff: float  # over elements whose reference is at least atol in size
    atol: float
    rtol: float
    passed: bool
    inputs: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "batches": list(self.batches)}


def compare(reference: Any, actual: Any, *, atol: float = ATOL, rtol: float = RTOL,
            batches: Sequence[int] = (), inputs: str = "", scale: Sequence[float] | None = None) -> Validation:
    import numpy as np

    reference = np.asarray(reference, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if reference.shape != actual.shape:
        raise ZooError(f"onnxruntime gives shape {actual.shape}, PyTorch {reference.shape}: the export is wrong")
    diff = np.abs(actual - reference)
    tolerance = atol * (np.asarray(scale, dtype=np.float64) if scale is not None else 1.0)
    big = np.abs(reference) >= tolerance
    rel = float((diff[big] / np.abs(reference[big])).max()) if big.any() else 0.0
    passed = bool(  # NaN anywhere fails: NaN <= x is False
        (diff <= tolerance + rtol * np.abs(reference)).all())
    return Validation(samples=int(reference.shape[0]), batches=tuple(batches), max_abs_diff=float(np.nanmax(diff)),
                      max_rel_diff=rel, atol=atol, rtol=rtol, passed=passed, inputs=inputs)


def validate(session: Any, module: Any, encode: Any, items: Sequence[Any], input_names: Sequence[str], *,
             atol: float = ATOL, rtol: float = RTOL, inputs: str = "", scale: Sequence[float] | None = None
             ) -> Validation:
    """Compare ``session`` (onnxruntime) with ``module`` (PyTorch) on ``items``; raise when they differ.

    ``encode`` turns a list of items into the graph's feeds (numpy arrays by input name); ``scale``:
    each output column's unit (see the module).
    """
    import numpy as np
    import torch

    if not items:
        raise ZooError("no samples to validate the export on")
    sizes = ([1] * len(items) if getattr(module, "one_at_a_time", False)  # a graph for one input at a time
             else [1] + [8] * ((len(items) - 1 + 7) // 8))
    expected, got, batches, start = [], [], [], 0
    output = session.get_outputs()[0].name
    module.eval()
    for size in sizes:
        chunk = list(items[start:start + size])
        start += size
        if not chunk:
            break
        feeds = encode(chunk)
        with torch.no_grad():
            expected.append(module(*(torch.from_numpy(feeds[n]) for n in input_names)).numpy())
        got.append(session.run([output], feeds)[0])
        batches.append(len(chunk))
    result = compare(np.concatenate(expected), np.concatenate(got), atol=atol, rtol=rtol, batches=batches,
                     inputs=inputs, scale=scale)
    if not result.passed:
        raise ValidationError(
            f"onnxruntime's outputs differ from PyTorch's on {result.samples} samples ({inputs or 'given inputs'}): "
            f"max abs diff {result.max_abs_diff:.3g}, max rel diff {result.max_rel_diff:.3g}, beyond the tolerance "
            f"(atol {atol:g}, rtol {rtol:g}); nothing was written. The model may use an operation that does not "
            f"trace faithfully; please report it, or loosen the check with --atol/--rtol if the difference is "
            f"acceptable", result)
    return result
