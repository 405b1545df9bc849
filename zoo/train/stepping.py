"""What every training step shares, whoever takes it (a head, an unfrozen backbone, a dense
network): the learning-rate schedule, BatchNorm kept as pretrained, DDP's join for an empty part,
autocast on CUDA, a progress bar, an answer as numpy."""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
from torch import nn

from zoo.distributed import world

__all__ = ["schedule", "freeze_batchnorm", "joined", "autocast", "progress_bar", "to_numpy"]


def freeze_batchnorm(module: nn.Module) -> None:
    """BatchNorm keeps its pretrained statistics: a few dozen images per batch would ruin them."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def schedule(optimizer: torch.optim.Optimizer, position: float, warmup: float) -> None:
    """Each group's learning rate at ``position`` (0..1) of an unfrozen phase: a linear warmup over
    the first ``warmup`` of it, then a cosine decay towards 0 (the usual schedule for fine-tuning
    pretrained layers: no large step before the new head and the layers agree). A function of the
    position alone, so a resumed phase continues its schedule exactly."""
    if warmup > 0 and position < warmup:
        factor = (position + 1e-3) / warmup
    else:
        factor = 0.5 * (1 + math.cos(math.pi * min(1.0, (position - warmup) / (1 - warmup))))
    for group in optimizer.param_groups:
        group["lr"] = group.get("base_lr", group["lr"]) * min(1.0, factor)


def joined(model: nn.Module) -> Any:
    """DDP's join for a rank whose part of the last batch was empty (fewer examples than ranks):
    the others' gradient reductions go on without it. A plain module needs none."""
    from contextlib import nullcontext

    return model.join() if hasattr(model, "join") and world().distributed else nullcontext()


def autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def progress_bar(enabled: bool, total: int, description: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="item", leave=False, file=sys.stderr)


def to_numpy(answer: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One picture's answer as numpy arrays (floats as float32)."""
    return {k: v.detach().float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in answer.items()}
