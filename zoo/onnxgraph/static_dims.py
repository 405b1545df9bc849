"""Turn shape arithmetic on fixed dimensions into constants, so runtimes can fuse what follows.

Models ported from TensorFlow pad "same" at run time: they read the input's height and width
(``Shape`` -> ``Gather``) and compute the padding from them (timm's ``Conv2dSame`` in
``tf_efficientnet_*``, ``tf_mobilenetv3_*``). The exported graph fixes height and width (only the
batch, and a text model's sequence, are dynamic), so those reads are constants in disguise; but
``Shape`` of a tensor with a dynamic batch is not constant as a whole, and onnxruntime folds
neither it nor what follows. Its ``Pad`` nodes then stay separate from the convolutions and break
onnxruntime's blocked (NCHWc) layout into pieces, with a reorder before and after each.

:func:`fold_static_dims` replaces every ``Gather`` of one fixed dimension out of a ``Shape`` by
its value and evaluates the small arithmetic after it, round after round (each constant padding
lets shape inference see the next layer's size). onnxruntime's ``Pad`` + ``Conv`` fusion then
removes the pads: efficientnet_lite0 loses its 5 ``Pad``
nodes, 9 layout reorders and about 150 small shape operators (timings in ``zoo bench``). Dynamic
dimensions are never touched, and every export is validated against PyTorch afterwards.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fold_static_dims"]


def _small(init: Any) -> bool:
    """An initializer held in the file and small enough to be a shape or a padding, not a weight."""
    return not init.external_data and math.prod(init.dims) <= _MAX_FOLDED_ELEMENTS


def _without_weights(model: Any) -> Any:
    """The model with its large initializers declared as typed graph inputs instead: the same
    shapes for shape inference, without serialising (or holding twice) gigabytes of weights."""
    from onnx import helper

    graph = model.graph
    light = helper.make_graph(list(graph.node), graph.name, list(graph.input), list(graph.output),
                              value_info=list(graph.value_info))
    inputs = {i.name for i in graph.input}
    for init in graph.initializer:
        if _small(init):
            light.initializer.append(init)
        elif init.name not in inputs:
            light.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    copy = helper.make_model(light, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    copy.functions.extend(model.functions)
    return copy


def _static_dims(model: Any) -> dict[str, list[int | None]]:
    """Each tensor's dimensions where ONNX shape inference knows them (``None`` where dynamic)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(_without_weights(model))
    except (ValueError, onnx.shape_inference.InferenceError):  # operators ONNX cannot infer
        return {}
    dims: dict[str, list[int | None]] = {}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            dims[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return dims


#: Cheap operators of shape arithmetic: folded when all their inputs are known (never Conv & co).
_FOLDABLE = frozenset({"Add", "Sub", "Mul", "Div", "Ceil", "Floor", "Neg", "Abs", "Max", "Min", "Clip", "Cast",
                       "Unsqueeze", "Squeeze", "Concat", "Slice", "Reshape", "Transpose", "Gather", "Identity",
                       "ConstantOfShape", "Range", "Equal", "Where", "Expand", "Shape"})
#: Only small results become constants: shapes and pads, not copies of weights.
_MAX_FOLDED_ELEMENTS = 64


def _known_values(graph: Any) -> dict[str, Any]:
    """Values known before running, as numpy arrays: small initializers (not those that are also
    graph inputs, which a caller may override) and Constant nodes."""
    from onnx import numpy_helper

    inputs = {i.name for i in graph.input}
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer
              if init.name not in inputs and _small(init)}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _fold_shape_reads(model: Any, known: dict[str, Any]) -> int:
    """``Gather(Shape(x), i)`` with dimension ``i`` of ``x`` fixed, and ``Shape(x)`` of a fully
    fixed ``x``, become constants (initializers); dynamic dimensions stay run-time reads."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    shapes = {n.output[0]: n for n in graph.node if n.op_type == "Shape"}
    if not shapes:
        return 0
    dims = _static_dims(model)
    folded = []
    for node in graph.node:
        if node.output[0] in known:
            continue
        if node.op_type == "Shape" and not node.attribute:
            found = dims.get(node.input[0])
            if found is not None and all(d is not None for d in found):
                folded.append((node, np.array(found, dtype=np.int64)))
            continue
        if node.op_type != "Gather" or node.input[0] not in shapes or node.input[1] not in known:
            continue
        shape_node = shapes[node.input[0]]
        found = dims.get(shape_node.input[0])
        if found is None or shape_node.attribute or any(a.i != 0 for a in node.attribute if a.name == "axis"):
            continue
        picks = np.asarray(known[node.input[1]])
        if picks.dtype.kind not in "iu" or any(not -len(found) <= p < len(found) for p in picks.reshape(-1)):
            continue
        values = [found[p] for p in picks.reshape(-1)]
        if all(v is not None for v in values):  # else a dynamic dimension (the batch): kept
            folded.append((node, np.array(values, dtype=np.int64).reshape(picks.shape)))
    for node, value in folded:
        known[node.output[0]] = value
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        graph.node.remove(node)
    return len(folded)


def _fold_constants(model: Any, known: dict[str, Any]) -> int:
    """Evaluate, once, the cheap operators whose inputs are all known (onnx's reference runtime)."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    folded = 0
    for node in list(graph.node):
        if (node.op_type not in _FOLDABLE or node.domain not in ("", "ai.onnx") or len(node.output) != 1
                or node.output[0] in known or not all(i == "" or i in known for i in node.input)):
            continue
        if any(known[i].size > _MAX_FOLDED_ELEMENTS for i in node.input if i) or _grows(node, known):
            continue
        single = helper.make_model(helper.make_graph([node], "fold", [], [helper.make_empty_tensor_value_info(
            node.output[0])]), opset_imports=model.opset_import)
        feeds = {i: known[i] for i in node.input if i}
        try:
            single.graph.input.extend(helper.make_empty_tensor_value_info(i) for i in feeds)
            (value,) = ReferenceEvaluator(single).run(None, feeds)
        except Exception:  # noqa: BLE001 - an operator the reference runtime cannot fold stays as it is
            continue
        if value.size > _MAX_FOLDED_ELEMENTS:
            continue
        known[node.output[0]] = value
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        graph.node.remove(node)
        folded += 1
    return folded


def _grows(node: Any, known: dict[str, Any]) -> bool:
    """Whether an operator that makes a tensor of a requested size would make a big one: checked
    before evaluating, so folding never allocates a large tensor only to throw it away."""
    import numpy as np

    if node.op_type in ("ConstantOfShape", "Expand"):
        shape = known[node.input[-1] if node.op_type == "Expand" else node.input[0]]
        return int(np.prod(np.maximum(np.asarray(shape, dtype=np.int64), 1))) > _MAX_FOLDED_ELEMENTS
    if node.op_type == "Range":
        start, limit, delta = (float(np.asarray(known[i]).reshape(-1)[0]) for i in node.input)
        return delta == 0 or (limit - start) / delta > _MAX_FOLDED_ELEMENTS
    return False


def fold_static_dims(model: Any, rounds: int = 50) -> int:
    """Fold, in place, the graph's shape reads of fixed dimensions and the arithmetic on them, until
    nothing changes (each round lets shape inference see through the pads folded before it);
    returns how many nodes became constants."""
    graph = model.graph
    if not any(n.op_type == "Shape" for n in graph.node):
        return 0
    total = 0
    known = _known_values(graph)
    for _ in range(rounds):
        changed = _fold_shape_reads(model, known) + _fold_constants(model, known)
        if not changed:
            break
        total += changed
    if total:
        _drop_unused(graph)
    return total
def _inputs(graph: Any) -> set[str]:
    """Every name the graph's nodes read, inside subgraphs (If, Loop) too."""
    names: set[str] = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                names |= _inputs(sub)
    return names


def _drop_unused(graph: Any) -> None:
    """Remove the nodes and initializers nothing reads any more (the orphaned shape arithmetic)."""
    while True:
        needed = {o.name for o in graph.output} | _inputs(graph)
        dead = [i for i, n in enumerate(graph.node) if not any(o in needed for o in n.output)]
        if not dead:
            break
        for i in reversed(dead):
            del graph.node[i]
    needed = {o.name for o in graph.output} | {i.name for i in graph.input} | _inputs(graph)
    unused = [i for i, init in enumerate(graph.initializer) if init.name not in needed]
    for i in reversed(unused):
        del graph.initializer[i]
