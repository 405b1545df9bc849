"""Shape reads of fixed dimensions fold into constants; dynamic ones (the batch) stay run-time reads."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from zoo.onnxgraph.static_dims import fold_static_dims

timm_layers = pytest.importorskip("timm.layers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter's notice


class TfSameNet(nn.Module):
    """Two TensorFlow-"same" convolutions (padding computed from the input at run time, as in
    tf_efficientnet_*), then a flatten that reads the batch size."""

    def __init__(self) -> None:
        super().__init__()
        self.first = timm_layers.Conv2dSame(3, 8, 3, stride=2)
        self.second = timm_layers.Conv2dSame(8, 4, 5, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(torch.relu(self.first(x)))
        return y.reshape(x.shape[0], -1)


def _export(tmp_path, dynamic: dict[int, str] | None = None) -> onnx.ModelProto:
    path = tmp_path / "net.onnx"
    torch.onnx.export(TfSameNet().eval(), (torch.randn(2, 3, 37, 30),), str(path), dynamo=False, opset_version=18,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": dynamic or {0: "batch"}, "y": {0: "batch"}})
    return onnx.load(str(path))


def _run(model: onnx.ModelProto, x: np.ndarray, level: str = "ORT_DISABLE_ALL") -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.slow
def test_tf_same_padding_becomes_constant_and_outputs_do_not_change(tmp_path):
    original = _export(tmp_path)
    before = Counter(n.op_type for n in original.graph.node)
    assert before["Shape"] >= 4 and before["Pad"] == 2 and before["Ceil"] >= 4  # run-time padding arithmetic

    folded = onnx.ModelProto()
    folded.CopyFrom(original)
    count = fold_static_dims(folded)
    onnx.checker.check_model(folded, full_check=True)
    after = Counter(n.op_type for n in folded.graph.node)
    assert count > 0 and after["Ceil"] == 0 and after["Pad"] == 2
    pads = {n.input[1] for n in folded.graph.node if n.op_type == "Pad"}
    assert pads <= {i.name for i in folded.graph.initializer}  # now constants onnxruntime can fuse into Conv
    assert after["Shape"] == 1  # the batch size read by reshape stays dynamic

    for batch in (1, 3):  # the batch axis is still free
        x = np.random.default_rng(batch).standard_normal((batch, 3, 37, 30)).astype(np.float32)
        expected = _run(original, x)
        assert np.array_equal(_run(folded, x), expected)
        assert np.allclose(_run(folded, x, "ORT_ENABLE_ALL"), expected, atol=1e-5)


@pytest.mark.slow
def test_dynamic_dimensions_stay_run_time_reads(tmp_path):
    original = _export(tmp_path, {0: "batch", 2: "height", 3: "width"})  # the padding depends on the input now
    folded = onnx.ModelProto()
    folded.CopyFrom(original)
    fold_static_dims(folded)  # only the pads vectors' own lengths (always 4) are fixed here
    count = Counter(n.op_type for n in folded.graph.node)
    assert count["Ceil"] == Counter(n.op_type for n in original.graph.node)["Ceil"]
    assert {n.input[0] for n in folded.graph.node if n.op_type == "Shape"} >= {"x", "/Relu_output_0"}
    for size in ((37, 30), (16, 21)):
        x = np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32)
        assert np.array_equal(_run(folded, x), _run(original, x))


def test_large_constant_results_are_not_folded():
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [1, 64, 64, 64])  # 262,144 elements
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]),
         helper.make_node("ConstantOfShape", ["shape"], ["big"]),
         helper.make_node("Mul", ["x", "big"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 64, 64]),
         helper.make_tensor_value_info("s", TensorProto.INT64, [4])], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert fold_static_dims(model) == 1  # the fully fixed Shape(x) became a constant
    assert [n.op_type for n in model.graph.node] == ["ConstantOfShape", "Mul"]  # the big tensor was not made
    onnx.checker.check_model(model, full_check=True)
    x = np.ones((1, 64, 64, 64), np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, s = session.run(None, {"x": x})
    assert s.tolist() == [1, 64, 64, 64] and not y.any()


def _gather_model(extra_inputs=()) -> onnx.ModelProto:
    """y = Shape(x)[k] * 2 with x of shape (batch, 3, 5) and k an initializer."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "k"], ["d"], axis=0),
         helper.make_node("Mul", ["d", "two"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 5]), *extra_inputs],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [])],
        initializer=[helper.make_tensor("k", TensorProto.INT64, [], [1]), helper.make_tensor("two", TensorProto.INT64, [], [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_an_initializer_that_is_also_an_input_is_not_a_constant():
    from onnx import TensorProto, helper

    model = _gather_model([helper.make_tensor_value_info("k", TensorProto.INT64, [])])  # k may be overridden
    assert fold_static_dims(model) == 0
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, 5), np.float32)
    assert session.run(None, {"x": x, "k": np.array(2, np.int64)})[0] == 10


@pytest.mark.slow
def test_weights_over_2_gib_are_neither_serialised_nor_copied():
    """onnx.load gives a model exported with external data its weights in memory; shape inference
    on the whole model would have to serialise it, which protobuf refuses beyond 2 GiB."""
    from onnx import TensorProto

    model = _gather_model()
    for k in range(2):  # 2 x 1.2 GB
        weight = model.graph.initializer.add(name=f"w{k}", data_type=TensorProto.FLOAT, dims=[300_000_000])
        weight.raw_data = bytes(1_200_000_000)
    assert fold_static_dims(model) == 2  # Shape(x)[1] = 3, then 3 * 2
    assert len(model.graph.node) == 0 and [i.name for i in model.graph.initializer] == ["y"]  # nothing reads w0, w1
    assert onnx.numpy_helper.to_array(model.graph.initializer[0]) == 6
