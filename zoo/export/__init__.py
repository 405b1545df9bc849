"""``zoo export``: fine-tuned runs and backbones to validated ONNX files, fp32 or int8.

- :mod:`zoo.export.prepare`: what to export (the module, its samples, its metadata);
- :mod:`zoo.export.exporting`: fp32 build and validation, int8, placing the files;
- :mod:`zoo.export.quantization`: static QDQ int8 and its fp32-vs-int8 check.

Tracing, static-shape folding and validation come from :mod:`zoo.onnxgraph` (shared with the
frozen-forward engine); the metadata layout from :mod:`zoo.modelinfo` (shared with the
torch-free :mod:`zoo.runtime`). Names load on first use.

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
    from zoo.modelinfo import ModelInfo
    from zoo.onnxgraph.onnxfile import read_info
    from zoo.export.quantization import QuantSettings
    from zoo.onnxgraph.validation import Validation, ValidationError, validate

_LAZY = {
    "export": "zoo.export.exporting",
    "ExportResult": "zoo.export.exporting",
    "ModelInfo": "zoo.modelinfo",
    "read_info": "zoo.onnxgraph.onnxfile",
    "QuantSettings": "zoo.export.quantization",
    "Validation": "zoo.onnxgraph.validation",
    "ValidationError": "zoo.onnxgraph.validation",
    "validate": "zoo.onnxgraph.validation",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
