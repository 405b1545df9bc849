"""int8: static QDQ quantization calibrated on real samples, then checked against fp32.

Settings (measured on this project's 2-core x86 CPU, see README "Export"): weights int8 per
channel (symmetric), activations uint8 (asymmetric, the u8s8 kernels onnxruntime runs fastest on
x86), every operator type onnxruntime can quantize (quantizing only Conv/Gemm/MatMul left
float islands between them: resnet50 ran 1.6x slower), and percentile calibration (99.999th
percentile of each activation over the run's training samples: on the digits fine-tune of
efficientnet_lite0, 1,697 test images, it lost 0.29 accuracy points and kept 96.5% of the
predictions, against 1.00 point and 95.2% for MinMax and for entropy, at twice MinMax's
calibration time; excluding the stem and last convolutions too did not help). The graph is
optimized first (``quant_pre_process``: shape inference and fusions), so BatchNorm is folded into
the weights before their ranges are measured.

The activations' ranges are measured by zoo (:mod:`zoo.export.calibration`), not by onnxruntime's
histogram calibrators, which measured the fp32 head too and failed on any activation whose range
is empty or nearly so (the README's digits run, cut at five joined layers: ``Too many bins for
data range``); onnxruntime places the Q/DQ pairs with those ranges. Measured again so
(``bench/int8_digits.py``, seeds 0, 1, 2, 1,717 held-out images each): 0.70, 0.87 and 0.70
points lost, 96.9%, 97.4% and 97.2% of the predictions kept, int8 1.8x faster than fp32 at batch 1.

A classifier's head (the new layers after the backbone) and its softmax stay fp32: they cost
nothing next to the backbone, and a uint8 softmax would give probabilities in steps of 1/255, with
ties for the top class. On the digits fine-tune of efficientnet_lite0 (1,697 test images) int8
lost 0.29 accuracy points with the head in fp32 against 0.41 with it quantized.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ExportError, ZooError

__all__ = ["compare_regression", "REGRESSION_MAX_GROWTH", "quantize_int8", "QuantSettings", "compare_int8", "calibration_batches", "head_nodes", "TEXT_OP_TYPES"]

#: Transformers quantize their matrix products only: the additive attention mask holds huge
#: negative values that no int8 range can share with real activations.
TEXT_OP_TYPES = ("MatMul", "Gemm")


@dataclass(frozen=True)
class QuantSettings:
    per_channel: bool = True
    calibrate_method: str = "percentile"  # percentile | minmax | entropy
    op_types: tuple[str, ...] | None = None  # None: images every type onnxruntime can quantize, text TEXT_OP_TYPES
    batch: int = 8

    def to_dict(self) -> dict[str, Any]:
        return {"format": "QDQ", "weights": f"int8 {'per-channel' if self.per_channel else 'per-tensor'} symmetric",
                "activations": "uint8 asymmetric", "calibration_method": self.calibrate_method,
                "op_types": list(self.op_types) if self.op_types else "all supported"}


def calibration_batches(items: Sequence[Any], encode: Callable[[Sequence[Any]], dict[str, Any]],
                        batch: int = 8, pad_id: int = 0) -> list[dict[str, Any]]:
    """The calibration feeds: ``items`` encoded in equal batches (the last one filled from the
    start) and token batches padded to one length (masked, so the model's outputs do not change):
    one shape for every feed, as onnxruntime's calibrators need (zoo's measurement reads any)."""
    import numpy as np

    batch = max(1, min(batch, len(items)))
    items = list(items) + list(items[:(-len(items)) % batch])  # whole batches: one shape for every feed
    feeds = [encode(items[start:start + batch]) for start in range(0, len(items), batch)]
    if feeds and "input_ids" in feeds[0]:
        length = max(f["input_ids"].shape[1] for f in feeds)
        for f in feeds:
            extra = ((0, 0), (0, length - f["input_ids"].shape[1]))
            f["input_ids"] = np.pad(f["input_ids"], extra, constant_values=pad_id)
            f["attention_mask"] = np.pad(f["attention_mask"], extra, constant_values=0)
    return feeds


def quantize_int8(fp32: Path, out: Path, batches: Iterable[dict[str, Any]], *,
                  settings: QuantSettings = QuantSettings(), external_data: bool = False,
                  exclude: Sequence[str] = ()) -> list[str]:
    """Write the int8 QDQ version of ``fp32`` to ``out``, calibrated on ``batches`` of feeds;
    the nodes named in ``exclude`` stay fp32 (:func:`head_nodes`), and so do those that read or
    write an activation that is not finite on the calibration data. Returns every node kept fp32.

    onnxruntime's quantizer logs a warning per tensor through the root logger and its calibrators
    print progress to stdout; silencing them in this process would change the caller's logging and
    stdout while it runs. It runs instead in a child process (spawned: no threads or CUDA state
    inherited) whose root logger and stdout are its own; the calibration feeds go to it once.
    A failure there is one line here: a place that cannot hold the files stays an OSError (the
    export names its output), anything else says what failed and what to do."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from zoo.errors import STORAGE_ERRNOS

    feeds = list(batches)
    if not feeds:
        raise ZooError("int8 calibration got no samples; quantization needs the run's training data")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_quantize_quietly, str(fp32), str(out), feeds, settings, external_data,
                               list(exclude)).result()
    except ZooError:
        raise
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            raise
        raise _failed(exc) from None
    except BrokenProcessPool:
        raise ExportError("int8 quantization failed: onnxruntime's quantizer process stopped without an answer "
                          "(killed, or out of memory?); export fp32 (without --quantize), or free memory and "
                          "try again") from None
    except Exception as exc:  # noqa: BLE001 - onnxruntime's and numpy's own errors, one line each
        raise _failed(exc) from None


def _failed(exc: BaseException) -> ExportError:
    from zoo.runtime import onnxruntime_module, onnxruntime_reason

    version = getattr(onnxruntime_module(), "__version__", "?")
    return ExportError(f"int8 quantization failed in onnxruntime {version}'s quantizer ({type(exc).__name__}: "
                       f"{onnxruntime_reason(exc)}); export fp32 (without --quantize), and please report it with "
                       f"the model's name and this line")


def _quantize_quietly(fp32: str, out: str, feeds: list[dict[str, Any]], settings: QuantSettings,
                      external_data: bool, exclude: list[str]) -> list[str]:
    """The child's side of :func:`quantize_int8`: quiet (its own root logger and stdout), then
    pre-process, measure the activations (:mod:`zoo.export.calibration`) and quantize with those
    ranges; returns the nodes kept fp32."""
    import sys

    from zoo.export.calibration import measure
    from zoo.onnxgraph.onnxfile import storage_fault
    from zoo.runtime import onnxruntime_module

    logging.getLogger().setLevel(logging.CRITICAL)  # failures come back as exceptions, said in one line
    sys.stdout = open(os.devnull, "w")  # this process's own stdout
    quantization = onnxruntime_module("quantization")
    pre_process = onnxruntime_module("quantization.shape_inference").quant_pre_process

    target = Path(out)
    optimized = target.with_name(target.stem + ".pre.onnx")
    try:
        # ONNX's own shape inference only: onnxruntime's symbolic one gives up on BERT's masks and
        # then dumps its partial model into the current directory.
        pre_process(fp32, str(optimized), skip_symbolic_shape=True, save_as_external_data=external_data,
                    all_tensors_to_one_file=True, external_data_location=optimized.name + ".data")
        stats = measure(optimized, feeds, exclude=exclude, op_types=settings.op_types)
        kept = list(exclude) + _touching(optimized, {name for name, s in stats.items() if s.nonfinite}, exclude)
        overrides = {name: [_range(s, settings.calibrate_method)] for name, s in stats.items() if not s.nonfinite}

        class OneBatch(quantization.CalibrationDataReader):
            """onnxruntime's own MinMax pass (which needs a feed) for the few tensors zoo did not
            measure; every measured one is overridden."""

            def __init__(self) -> None:
                self.feeds = iter(feeds[:1])

            def get_next(self) -> dict[str, Any] | None:
                return next(self.feeds, None)

        quantization.quantize_static(
            str(optimized), out, OneBatch(), quant_format=quantization.QuantFormat.QDQ, nodes_to_exclude=kept,
            op_types_to_quantize=list(settings.op_types) if settings.op_types else None,
            per_channel=settings.per_channel, activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8, calibrate_method=quantization.CalibrationMethod.MinMax,
            use_external_data_format=external_data, extra_options={"TensorQuantOverrides": overrides})
    except Exception as exc:
        # onnx's C++ writers cut a file short on a full disk without a word; the next read fails
        fault = None if isinstance(exc, OSError) else storage_fault(target.parent, _size(Path(fp32)))
        if fault is not None:
            raise fault from None
        raise
    finally:
        for leftover in target.parent.glob(target.stem + ".pre*"):  # .pre.onnx, its data, -inferred copies
            leftover.unlink()
    return kept


def _range(stats: Any, method: str) -> dict[str, Any]:
    """An activation's range as onnxruntime's ``TensorQuantOverrides`` take it (float32 scalars)."""
    import numpy as np

    from zoo.export.calibration import activation_range

    low, high = activation_range(stats, method)
    return {"rmin": np.array(low, dtype=np.float32), "rmax": np.array(high, dtype=np.float32)}


def _size(graph: Path) -> int:
    """Bytes of a saved graph with its external data: what writing it once more takes."""
    from zoo.onnxgraph.onnxfile import data_files

    return sum(f.stat().st_size for f in [graph, *data_files(graph)])


def _touching(path: Path, tensors: set[str], exclude: Sequence[str]) -> list[str]:
    """The nodes (not already excluded) that read or write one of ``tensors``."""
    import onnx

    if not tensors:
        return []
    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.name not in exclude and tensors & {*n.input, *n.output}]


#: Node names of the new head in a traced classifier (``Graph.network`` is backbone + ``head``).
HEAD_PREFIX = "/network/head/"


def head_nodes(path: Path) -> list[str]:
    """The nodes that stay fp32: the classifier head's and the softmax that gives the model's
    output (attention softmaxes inside a transformer backbone are the backbone's business)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    return [n.name for n in graph.node
            if n.name.startswith(HEAD_PREFIX) or (n.op_type in ("Softmax", "Sigmoid") and set(n.output) & outputs)]


def compare_int8(fp32_outputs: Any, int8_outputs: Any, labels: Sequence[int] | None) -> dict[str, Any]:
    """fp32 vs int8 on the same inputs: accuracies and their drop in points (with labels), the share
    of inputs whose top-1 class is unchanged, and the cosine similarity of the outputs."""
    import numpy as np

    a = np.asarray(fp32_outputs, dtype=np.float64)
    b = np.asarray(int8_outputs, dtype=np.float64)
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    result: dict[str, Any] = {"samples": int(a.shape[0]), "cosine_mean": round(float(cosine.mean()), 6),
                              "cosine_min": round(float(cosine.min()), 6)}
    if labels is not None:
        truth = np.asarray(labels)
        fp32_acc = float((a.argmax(1) == truth).mean())
        int8_acc = float((b.argmax(1) == truth).mean())
        result.update(fp32_accuracy=round(fp32_acc, 6), int8_accuracy=round(int8_acc, 6),
                      drop_points=round(100 * (fp32_acc - int8_acc), 4),
                      top1_agreement=round(float((a.argmax(1) == b.argmax(1)).mean()), 6))
    return result


#: A regression's int8 export is refused when its RMSE on held-out data grows by more than this
#: percentage of the target's standard deviation (the task's own yardstick, not accuracy points).
REGRESSION_MAX_GROWTH = 2.0


def compare_regression(fp32_outputs: Any, int8_outputs: Any, truth: Any, scale: Sequence[float],
                       names: Sequence[str]) -> dict[str, Any]:
    """fp32 vs int8 numbers on the same inputs against their true values: each target's RMSE under
    both, and the largest growth over targets as a percentage of the target's standard deviation
    (``scale``); without true values, how far int8's numbers are from fp32's."""
    import numpy as np

    a = np.asarray(fp32_outputs, dtype=np.float64).reshape(len(fp32_outputs), -1)
    b = np.asarray(int8_outputs, dtype=np.float64).reshape(len(int8_outputs), -1)
    std = np.asarray(scale, dtype=np.float64)
    result: dict[str, Any] = {"samples": int(len(a)),
                              "max_abs_change": round(float(np.abs(a - b).max()) if a.size else 0.0, 6)}
    if truth is not None:
        t = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
        fp32_rmse = np.sqrt(((a - t) ** 2).mean(0))
        int8_rmse = np.sqrt(((b - t) ** 2).mean(0))
        growth = 100 * (int8_rmse - fp32_rmse) / std
        result.update(fp32_rmse={n: round(float(v), 6) for n, v in zip(names, fp32_rmse)},
                      int8_rmse={n: round(float(v), 6) for n, v in zip(names, int8_rmse)},
                      growth_percent_of_std=round(float(growth.max()), 4))
    return result
