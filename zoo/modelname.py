"""The name an exported model file goes by in a server: ``zoo serve``'s URLs and the folder of a
Triton model repository use the same one, so a model keeps its name from one to the other.

Stdlib only: both the serving layer and the export use it.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["served_name", "NAME_PATTERN", "DEFAULT_FILES"]

#: What a name may hold: it is part of URLs and a folder name.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: The files `zoo export` writes into a run or few-shot folder.
DEFAULT_FILES = ("model.onnx", "model.int8.onnx")


def served_name(path: str | Path) -> str:
    """The folder's name for ``FOLDER/model.onnx`` (``FOLDER-int8`` for ``model.int8.onnx``), else
    the file's stem; anything but letters, digits, '.', '_' and '-' becomes '-'."""
    path = Path(path)
    if path.name in DEFAULT_FILES:
        raw = path.resolve().parent.name + ("-int8" if path.name == "model.int8.onnx" else "")
    else:
        raw = path.name[:-len(".onnx")] if path.name.lower().endswith(".onnx") else path.stem
    return (re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.") or "model")[:128]
