"""Checkpoints of a run: one per epoch, written atomically, so a killed run resumes from the last
complete one and a finished run can roll back to its best.

A checkpoint holds only what training changed (the head and the unfrozen stages) plus the
optimizer and the loop's position; the frozen rest is the pretrained backbone, rebuilt on load.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from zoo.atomic import atomic_torch_save, atomic_write_json
from zoo.errors import ZooError

__all__ = ["Checkpoints"]

_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")


class Checkpoints:
    """The ``checkpoints/`` folder of a run: ``epoch-0001.pt``, ... and ``best.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch-{epoch:04d}.pt"

    def save(self, epoch: int, state: dict[str, Any]) -> Path:
        return atomic_torch_save(self.path(epoch), state)

    def epochs(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := _NAME.match(p.name)))

    def load(self, epoch: int) -> dict[str, Any]:
        path = self.path(epoch)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ZooError(f"{path}: checkpoint not found; the run folder is incomplete") from None
        except Exception as exc:
            raise ZooError(f"{path}: unreadable checkpoint ({exc}); delete it to resume from the one before") from None

    def latest(self) -> tuple[int, dict[str, Any]] | None:
        """The newest checkpoint that loads (a torn write never has the final name, but be safe)."""
        for epoch in reversed(self.epochs()):
            try:
                return epoch, self.load(epoch)
            except ZooError:
                continue
        return None

    def mark_best(self, epoch: int, score: dict[str, Any]) -> None:
        atomic_write_json(self.folder / "best.json", {"epoch": epoch, **score})

    def best(self) -> dict[str, Any] | None:
        path = self.folder / "best.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
