"""The device a command runs on: ``--device`` checked against what PyTorch can see."""

from __future__ import annotations

from typing import Any

from zoo.errors import InputError

__all__ = ["torch_device"]


def torch_device(asked: str | None) -> Any:
    """``asked`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``...) as a ``torch.device``, or CUDA when
    present and nothing was asked; a device this machine lacks is one line, not a traceback deep
    in the first tensor copy."""
    import torch

    if asked is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(asked)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {asked!r}: not a device name; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = "built without CUDA" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise InputError(f"--device {asked}: PyTorch sees no CUDA GPU here (torch {torch.__version__}, {built}); "
                             f"use --device cpu, or leave --device out")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {asked}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"numbered from 0")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"--device {asked}: Apple's MPS is not available here; use --device cpu")
    return device
