"""The ONNX file itself: trace a module, store zoo's metadata, keep big weights in one external file.

A protobuf message cannot exceed 2 GiB, so a larger model keeps its tensors in one data file
beside the graph (``model.onnx.data``), named by a bare relative location: the pair can be moved
together and never points outside its folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.__about__ import __version__
from zoo.errors import ZooError
from zoo.modelinfo import ModelInfo

__all__ = ["OPSET", "EXTERNAL_DATA_THRESHOLD", "trace", "save", "write_metadata", "read_info", "data_files",
           "weights_bytes", "storage_fault"]

#: Opset 18: current operators (LayerNormalization, ReduceMean with axes as input) that every
#: onnxruntime since 1.14 runs, and the newest that PyTorch's TorchScript exporter writes fully.
OPSET = 18
#: Above this many bytes of weights the tensors go to an external data file (protobuf's limit is 2 GiB).
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def trace(module: Any, feeds: dict[str, Any], input_names: Sequence[str], output_name: str | Sequence[str],
          path: Path, *, modality: str, opset: int = OPSET) -> Path:
    """Export ``module`` to ``path`` with a dynamic batch axis (and sequence axis for text), or for
    one input at a time when the module says ``one_at_a_time`` (a loop over its batch would trace
    for the batch it was traced with).

    ``output_name`` names the module's output, or each of the tensors in the tuple it returns.

    PyTorch's TorchScript-based exporter is used: the dynamo exporter needs onnxscript, which zoo
    does not depend on, and tracing is exact for these feed-forward networks (validation proves it).
    """
    import torch

    one = bool(getattr(module, "one_at_a_time", False))  # traced for one input: no batch axis
    args = tuple(torch.from_numpy(feeds[name][:1] if one else feeds[name]) for name in input_names)
    axes = {name: ({0: "batch", 1: "sequence"} if modality == "text" else {0: "batch"}) for name in input_names}
    outputs = [output_name] if isinstance(output_name, str) else list(output_name)
    axes.update({name: {0: "batch"} for name in outputs})
    if one:
        axes = {}
    module.eval()
    # With gradients on, even when called under no_grad: inference fast paths that ONNX lacks
    # (nn.MultiheadAttention's fused _native_multi_head_attention) switch on when they are off.
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        try:
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                              input_names=list(input_names), output_names=outputs, dynamic_axes=axes,
                              do_constant_folding=True)
        except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
            size = sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
            fault = storage_fault(path.parent, size)
            if fault is not None:
                raise fault from None
            raise ZooError(f"PyTorch cannot export this model to ONNX (opset {opset}): {str(exc).splitlines()[0]}"
                           ) from exc
    module.eval()
    return path


def storage_fault(folder: Path, need: int) -> OSError | None:
    """After a failed write into ``folder`` that did not say why, the OSError it would have been
    when the place is at fault: less free space than ``need`` bytes (ENOSPC), or a file size limit
    below it (EFBIG); else None. The C++ writers of onnx and onnxruntime (shape inference to a path,
    an optimized model) and of PyTorch do not report a failed write: the file is cut short and the
    next reader fails on it (a protobuf DecodeError) or the writer raises a RuntimeError."""
    import errno
    import shutil

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < need:
        return OSError(errno.ENOSPC, "No space left on device")
    try:
        import resource
    except ImportError:  # Windows: no file size limit
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and soft < need:
        return OSError(errno.EFBIG, "File too large")
    return None


def weights_bytes(model: Any) -> int:
    """Bytes held by the graph's initializers (in the proto or in external files)."""
    import numpy as np
    from onnx import helper

    total = 0
    for tensor in model.graph.initializer:
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
        total += count * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    return total


def save(model: Any, path: Path, info: ModelInfo, *, threshold: int = EXTERNAL_DATA_THRESHOLD) -> list[Path]:
    """Write ``model`` with zoo's metadata and check it; returns the files written (graph first)."""
    import onnx

    _stamp(model, info)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    if weights_bytes(model) > threshold:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024, convert_attribute=False)
    else:
        onnx.save_model(model, str(path))
    check(path)
    return [path, *data_files(path)]


def check(path: Path) -> None:
    """``onnx.checker`` on the file (by path, so models with external data are checked too)."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ZooError(f"the exported graph is not valid ONNX: {str(exc).splitlines()[0]}") from exc


def _stamp(model: Any, info: ModelInfo) -> None:
    model.producer_name = "zoo"
    model.producer_version = __version__
    model.doc_string = (f"{info.model}: {info.kind} ({info.modality}), exported by zoo {__version__}; "
                        f"see metadata_props zoo.*")
    kept = [p for p in model.metadata_props if not p.key.startswith("zoo.")]
    del model.metadata_props[:]
    for prop in kept:
        model.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in info.to_props().items():
        model.metadata_props.add(key=key, value=value)


def write_metadata(path: Path, info: ModelInfo) -> None:
    """Replace the zoo metadata of a saved model; external weights stay where they are."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    _stamp(model, info)
    onnx.save_model(model, str(path))


def read_info(path: str | Path) -> ModelInfo:
    """The zoo metadata of an ONNX file (with onnx; the runtime reads it through onnxruntime)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ModelInfo.from_props({p.key: p.value for p in model.metadata_props}, where=str(path))


def data_files(path: Path) -> list[Path]:
    """The external data files a saved model refers to; each must be a bare name in its folder."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            names.add(ExternalDataInfo(tensor).location)
    files = []
    for name in sorted(names):
        if Path(name).name != name or name in ("", ".", ".."):
            raise ZooError(f"{path}: external data location {name!r} is not a plain file name in the model's folder")
        files.append(path.parent / name)
    return files
