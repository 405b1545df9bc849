"""``zoo export``: fine-tuned runs and backbones to validated ONNX files, fp32 or int8.

- :mod:`zoo.export.prepare`: what to export (the module, its samples, its metadata);
- :mod:`zoo.export.onnxfile`: tracing, metadata, external data, ``onnx.checker``;
- :mod:`zoo.export.static_dims`: shape arithmetic on fixed dimensions folded into constants;
- :mod:`zoo.export.validation`: onnxruntime against PyTorch, part of every export;
- :mod:`zoo.export.quantization`: static QDQ int8 and its fp32-vs-int8 check;
- :mod:`zoo.export.metadata`: the metadata layout, shared with the torch-free :mod:`zoo.runtime`.

Names load on first use: the runtime imports :mod:`zoo.export.metadata` without torch or onnx.

``zoo.export`` is both this package and the function (``zoo.export(run_dir, "model.onnx")``):
importing a submodule binds the package as ``zoo.export``, so the package forwards calls to
:func:`export` rather than let import order decide what ``zoo.export`` is.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.export.exporting import ExportResult, export
    from zoo.export.metadata import ModelInfo
    from zoo.export.onnxfile import read_info
    from zoo.export.quantization import QuantSettings
    from zoo.export.validation import Validation, ValidationError, validate

_LAZY = {
    "export": "zoo.export.exporting",
    "ExportResult": "zoo.export.exporting",
    "ModelInfo": "zoo.export.metadata",
    "read_info": "zoo.export.onnxfile",
    "QuantSettings": "zoo.export.quantization",
    "Validation": "zoo.export.validation",
    "ValidationError": "zoo.export.validation",
    "validate": "zoo.export.validation",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
