"""Atomic writes: a temp file in the same folder, fsynced, then renamed over the target.

Readers see the old file or the new one, never half of one: a killed process, a full disk or an
error mid-write leaves the previous version in place and no temp behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_torch_save"]


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any], *, mode: int | None = None) -> Path:
    """Call ``write(handle)`` on a temp file next to ``path``, then rename it into place.
    ``mode``: the file's permissions (mkstemp's are 0600, private), e.g. 0o644 for package data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> Path:
    return atomic_write(path, lambda handle: handle.write(data), mode=mode)


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def atomic_torch_save(path: Path, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))
