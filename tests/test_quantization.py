"""int8 calibration on any data: activations that are constant, nearly constant, zero, tiny, huge or
not finite on the calibration set quantize (or stay fp32) instead of killing the export, and the
histogram behind the ranges is exact as it grows.

A tiny real network is traced, validated and quantized by the same functions ``zoo export`` runs
(``build_fp32``, ``build_int8``); its intermediates are degenerate on every input by construction.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import zoo
from zoo.export.calibration import BINS, ActivationStats, activation_range
from zoo.export.exporting import build_fp32, build_int8
from zoo.export.prepare import Prepared, graph_module


class Degenerate(nn.Module):
    """Real features, and beside them activations whose calibration range is empty or degenerate."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(x).relu().mean((2, 3)) + 1.0
        unit = nn.functional.normalize(features, dim=1)
        norm = unit.norm(dim=1, keepdim=True)  # 1 give or take a few float32 steps: a near-zero-width range
        zero = features * 0.0  # exactly 0 on every input
        huge = features * 0.0 + 3e8  # a constant far from 0: no float32 step within 2,048 bins of it
        tiny = features[:, :1] * 1e-40  # subnormal float32
        infinite = features[:, :1] * 0.0 - float("inf")  # not finite: stays fp32
        masked = torch.clamp(infinite, min=-1.0)  # finite again, -1
        joined = torch.cat([unit * norm, zero[:, :1], huge[:, :1] * 1e-8 - 3.0, tiny, masked], dim=1)
        return self.fc(joined)


def _prepared(count: int = 24) -> Prepared:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(count)]
    labels = [int(i % 3) for i in range(count)]
    return Prepared(module=graph_module(Degenerate(), "image", True), card=zoo.get_card("resnet18"),
                    kind="classifier", input_names=("pixel_values",), output_name="probabilities",
                    labels=("a", "b", "c"), source={"model": "resnet18", "modality": "image"}, weights={},
                    preprocessing={"size": [8, 8], "resize": 8, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                                   "interpolation": "bilinear"},
                    samples=images[:4], samples_from="random pictures", calibration=images,
                    calibration_from="random pictures", evaluation=(images, labels), evaluation_from="random pictures")


@pytest.mark.parametrize("method", ["percentile", "minmax", "entropy"])
def test_int8_exports_a_network_whose_activations_are_degenerate(tmp_path, method):
    from zoo.export.quantization import QuantSettings
    from zoo.runtime import open_model

    prepared = _prepared()
    fp32 = build_fp32(prepared, tmp_path / "fp32", "m.onnx")
    int8 = build_int8(prepared, fp32, tmp_path / "int8", max_drop=100, settings=QuantSettings(calibrate_method=method))
    q = int8.info.quantization
    assert q["calibration_method"] == method and q["evaluation"]["samples"] == 24
    kept = set(q["kept_fp32"])  # the nodes around the infinite activation, and the softmax
    assert any("Clip" in name for name in kept) and "/Softmax" in kept
    items = prepared.evaluation[0]
    expected = open_model(fp32.path).outputs(items)
    got = open_model(int8.path).outputs(items)
    assert np.isfinite(got).all() and np.abs(got - expected).max() < 0.05
    assert q["evaluation"]["top1_agreement"] >= 0.9


def test_the_histogram_grows_exactly_and_ranges_stay_ordered():
    stats = ActivationStats()
    stats.add(np.full(10, 1e-3, np.float32))  # a tiny span first
    stats.add(np.array([0.0, 5.0, -7.0, np.inf, np.nan], np.float32))  # then a wide one, and non-finite values
    assert stats.nonfinite and stats.low == -7.0 and stats.high == 5.0 and stats.top == 8.0
    assert stats.counts.sum() == 13 and stats.counts[0] == 11  # 1e-3 and 0 merged into the first bin, not lost
    assert stats.counts[int(7.0 / 8.0 * BINS)] == 1 and stats.counts[int(5.0 / 8.0 * BINS)] == 1
    assert activation_range(stats, "minmax") == (-7.0, 5.0)
    for value in (0.0, 1.0, 3e8, -2.5e38, 1e-42):
        constant = ActivationStats()
        for _ in range(3):
            constant.add(np.full((4, 5), value, np.float32))
        for method in ("percentile", "minmax", "entropy"):
            low, high = activation_range(constant, method)
            assert low <= high and low == pytest.approx(float(np.float32(value)), rel=1e-6, abs=1e-45)
    empty = ActivationStats()
    empty.add(np.zeros((0, 3), np.float32))
    assert activation_range(empty, "percentile") == (0.0, 0.0)


def test_percentile_matches_numpy_within_a_bin():
    rng = np.random.default_rng(1)
    stats = ActivationStats()
    values = [rng.standard_normal(50_000).astype(np.float32) * scale for scale in (0.01, 1.0, 3.0)]
    for batch in values:
        stats.add(batch)
    truth = np.percentile(np.abs(np.concatenate(values)), 99.999, method="inverted_cdf")  # the first value reaching it
    low, high = activation_range(stats, "percentile")
    assert high == pytest.approx(truth, abs=stats.top / BINS) and low == -high


@pytest.mark.slow
def test_a_quantizer_failure_of_another_kind_is_one_line_saying_what_to_do(tmp_path):
    """onnxruntime cannot even load this graph for its pre-processing (an operator of an unknown
    domain): its own error comes back as one line, with what to do."""
    import onnx
    from onnx import TensorProto, helper

    from zoo.errors import ExportError
    from zoo.export.quantization import quantize_int8

    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="com.example")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)])
    fp32 = tmp_path / "fp32" / "m.onnx"
    fp32.parent.mkdir()
    onnx.save(model, str(fp32))
    out = tmp_path / "int8" / "m.onnx"
    out.parent.mkdir()
    with pytest.raises(ExportError) as caught:
        quantize_int8(fp32, out, [{"x": np.ones((2, 4), np.float32)}])
    message = str(caught.value)
    assert "\n" not in message and message.startswith("int8 quantization failed in onnxruntime ")
    assert "export fp32 (without --quantize)" in message and "'s quantizer (" in message  # its reason, one line
    assert list(out.parent.iterdir()) == []  # no pre-processed or partial graph left
