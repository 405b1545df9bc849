"""Activation ranges for int8, measured by zoo on the calibration feeds, whatever the data.

onnxruntime's quantizer takes ranges it did not measure through ``TensorQuantOverrides``
(``rmin``/``rmax`` per tensor, a documented option of ``quantize_static`` since 1.17), so zoo
measures them itself and leaves onnxruntime the placing of the Q/DQ pairs. Why not onnxruntime's
own histogram calibrators (percentile, entropy):

- they measure every float tensor of the graph, the fp32 head's too (``nodes_to_exclude`` applies
  to the quantizer, not to the calibrator). A run cut at several joined layers (the digits demo's
  five) hands its head features that are already unit-length, and the head's L2 norm of them is 1
  give or take a few float32 steps on every sample;
- they bin each tensor over its own observed span [min|x|, max|x|], in float32. A span holding
  fewer float32 values than the 2,048 bins (that norm; any nearly constant tensor; a constant far
  from zero) makes numpy >= 2 refuse ("Too many bins for data range. Cannot create 2048
  finite-sized bins."), which killed the export; a span tiny on the first batch and wide on a later
  one makes their merge allocate bins by the billion.

Here each tensor's histogram of ``|x|`` starts at 0 and spans a power of two, doubled (merging bin
pairs, exactly) when a batch goes beyond it: every span is representable whatever the values
(constant, zero, empty, tiny or huge), memory is :data:`BINS` counts per tensor, and each batch is
read once. Only the activations the quantizer may quantize are measured: inputs and outputs of
the nodes it is allowed to touch. An activation that is not finite on the calibration data (an
infinite mask value, a NaN) has no int8 range: the nodes that read or write it stay fp32.

Methods: ``minmax`` and ``entropy`` give the observed range (onnxruntime's entropy calibrator
with its default 128 bins and 128 levels, as zoo always ran it, has a single candidate threshold:
the whole range); ``percentile`` the 99.999th percentile of ``|x|``, clipped to the observed range,
as onnxruntime's symmetric percentile calibrator computes it. Measured on the digits demo run
(efficientnet_lite0, five joined layers, 1,717 held-out images): the same int8 model, to the
prediction, as onnxruntime's percentile calibrator gives once the head is left out of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ActivationStats", "calibrated_tensors", "typed_model", "measure", "activation_range", "BINS",
           "PERCENTILE"]

#: Histogram bins per tensor: over a power of two below twice the largest value, bins at least as
#: fine as onnxruntime's 2,048 over the observed span.
BINS = 4096
PERCENTILE = 99.999
#: The smallest span a histogram starts with: 2**-100, far below any activation worth a level of int8.
_MIN_EXPONENT = -100


@dataclass
class ActivationStats:
    """What the calibration feeds did to one tensor: its finite range, its smallest ``|x|``, a
    histogram of ``|x|`` over ``[0, 2**exponent]``, and whether any value was not finite."""

    low: float = math.inf
    high: float = -math.inf
    least: float = math.inf
    exponent: int = _MIN_EXPONENT
    counts: Any = field(default=None, repr=False)  # numpy int64[BINS]
    nonfinite: bool = False

    @property
    def top(self) -> float:
        return math.ldexp(1.0, self.exponent)

    @property
    def seen(self) -> bool:
        return self.counts is not None and bool(self.counts.any())

    def add(self, values: Any) -> None:
        import numpy as np

        x = np.asarray(values).reshape(-1)
        finite = np.isfinite(x)
        if not finite.all():
            self.nonfinite = True
            x = x[finite]
        if self.counts is None:
            self.counts = np.zeros(BINS, dtype=np.int64)
        if not x.size:
            return
        low, high = float(x.min()), float(x.max())
        self.low, self.high = min(self.low, low), max(self.high, high)
        self._cover(max(-low, high))
        magnitudes = np.abs(x.astype(np.float32, copy=False))
        self.least = min(self.least, float(magnitudes.min()))
        # |x| * 2**(log2(BINS) - exponent): a power of two, so each value's bin is exact
        scaled = magnitudes * np.float32(math.ldexp(BINS, -self.exponent))
        bins = np.minimum(scaled.astype(np.int64), BINS - 1)
        self.counts += np.bincount(bins, minlength=BINS)

    def _cover(self, largest: float) -> None:
        """Widen the histogram to a power of two >= ``largest``, merging 2**k bins into one."""
        mantissa, exponent = math.frexp(largest)
        exponent = max(exponent - 1 if mantissa == 0.5 else exponent, _MIN_EXPONENT)
        shift = exponent - self.exponent
        if shift <= 0:
            return
        self.exponent = exponent
        if shift >= int(math.log2(BINS)):
            total = self.counts.sum()
            self.counts[:] = 0
            self.counts[0] = total
            return
        merged = self.counts.reshape(BINS >> shift, 1 << shift).sum(axis=1)
        self.counts[:] = 0
        self.counts[:merged.size] = merged

    def threshold(self, method: str) -> float:
        """The largest ``|x|`` to represent: all of it, or (``percentile``) the lower edge of the
        bin where the cumulative count reaches the percentile, as onnxruntime takes it (whose
        bins start at the smallest ``|x|``), within the values seen."""
        import numpy as np

        largest = max(-self.low, self.high)
        if method in ("minmax", "entropy") or not self.seen:
            return largest
        if method != "percentile":
            raise ValueError(f"unknown calibration method {method!r}")
        cumulative = np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, PERCENTILE / 100 * cumulative[-1]))
        return min(max(index * self.top / BINS, self.least), largest)


def activation_range(stats: ActivationStats, method: str) -> tuple[float, float]:
    """``(rmin, rmax)`` for the quantizer: the method's threshold, clipped to the observed range
    (a tensor never seen finite: 0, which onnxruntime widens to a valid scale)."""
    if not stats.seen:
        return 0.0, 0.0
    threshold = stats.threshold(method)
    return max(stats.low, -threshold), min(stats.high, threshold)


def calibrated_tensors(model: Any, exclude: Iterable[str] = (), op_types: Sequence[str] | None = None) -> list[str]:
    """The float activations the quantizer may quantize: inputs and outputs of the nodes it is
    allowed to touch (not excluded; of ``op_types`` when given), initializers aside. ``model``
    carries its tensors' types (:func:`typed_model`)."""
    import onnx

    graph = model.graph
    kinds = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    constants = {i.name for i in graph.initializer}
    skipped = set(exclude)
    names: dict[str, None] = {}
    for node in graph.node:
        if node.name in skipped or (op_types and node.op_type not in op_types):
            continue
        for name in [*node.input, *node.output]:
            if name and name not in constants and kinds.get(name) in floats:
                names[name] = None
    return list(names)


def typed_model(path: Path) -> Any:
    """The graph at ``path`` (external weights left on disk) with a type for every tensor: ONNX
    shape inference when the file does not carry them all (``quant_pre_process`` writes them)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    known = {v.name for v in [*graph.value_info, *graph.input, *graph.output]} | {i.name for i in graph.initializer}
    if any(name and name not in known for node in graph.node for name in node.output):
        model = onnx.shape_inference.infer_shapes(model)
    return model


def measure(path: Path, feeds: Iterable[Mapping[str, Any]], *, exclude: Iterable[str] = (),
            op_types: Sequence[str] | None = None) -> dict[str, ActivationStats]:
    """Run ``feeds`` through the graph at ``path`` with the activations the quantizer may quantize
    (:func:`calibrated_tensors`) exposed as outputs, and gather each one's statistics (a graph
    input's from the feeds themselves)."""
    model = typed_model(path)
    tensors = calibrated_tensors(model, exclude, op_types)
    inputs = {i.name for i in model.graph.input}
    computed = [name for name in tensors if name not in inputs]
    session = _exposing(model, computed, path) if computed else None
    stats = {name: ActivationStats() for name in tensors}
    for feed in feeds:
        values = dict(zip(computed, session.run(computed, dict(feed)))) if session is not None else {}
        for name in tensors:
            stats[name].add(feed[name] if name in inputs else values[name])
    return stats


def _exposing(model: Any, tensors: Sequence[str], path: Path) -> Any:
    """An onnxruntime session of ``model`` whose outputs include ``tensors``: built from memory, or,
    for weights kept in an external file, from a copy written beside ``path`` (where the weights
    resolve) and removed once read."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    from zoo.runtime import onnxruntime_module

    ort = onnxruntime_module()
    graph = model.graph
    typed = {v.name: v for v in graph.value_info}
    outputs = {o.name for o in graph.output}
    graph.output.extend(typed[name] for name in tensors if name not in outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    if not any(uses_external_data(i) for i in graph.initializer):
        return ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    exposed = path.with_name(path.stem + ".calibration.onnx")
    try:
        onnx.save_model(model, str(exposed))
        return ort.InferenceSession(str(exposed), sess_options=options, providers=["CPUExecutionProvider"])
    finally:
        exposed.unlink(missing_ok=True)
