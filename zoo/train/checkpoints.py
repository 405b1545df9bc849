"""Checkpoints of a run: one per epoch, written atomically, so a killed run resumes from the last
complete one and a finished run can roll back to its best.

A checkpoint holds only what training changed (the head and the unfrozen stages) and the loop's
position; the frozen rest is the pretrained backbone, rebuilt on load. The optimizer's state
(AdamW's two moments: twice the size of the trained weights) only matters to a resume, which
continues from the newest checkpoint: it is written beside that one (``optimizer-NNNN.pt``, before
the epoch's weights land) and the previous epoch's is then removed, so a run folder keeps the
weights of every epoch (for the rollback to the best) and one optimizer state.
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
_OPTIMIZER = re.compile(r"^optimizer-(\d{4,})\.pt$")


class Checkpoints:
    """The ``checkpoints/`` folder of a run: ``epoch-0001.pt``, ..., the newest epoch's
    ``optimizer-NNNN.pt`` and ``best.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, epoch: int) -> Path:
        return self.folder / f"epoch-{epoch:04d}.pt"

    def optimizer_path(self, epoch: int) -> Path:
        return self.folder / f"optimizer-{epoch:04d}.pt"

    def save(self, epoch: int, state: dict[str, Any]) -> Path:
        """Write ``state``; its ``optimizer`` goes to its own file first (a kill between the two
        leaves the previous epoch, with its optimizer file, as the newest complete one)."""
        state = dict(state)
        optimizer = state.pop("optimizer", None)
        if optimizer is not None:
            atomic_torch_save(self.optimizer_path(epoch), optimizer)
        path = atomic_torch_save(self.path(epoch), state)
        for old in self.folder.iterdir():
            match = _OPTIMIZER.match(old.name)
            if match and int(match.group(1)) != epoch:
                old.unlink(missing_ok=True)
        return path

    def epochs(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := _NAME.match(p.name)))

    def load(self, epoch: int) -> dict[str, Any]:
        """The weights and position of ``epoch`` (no optimizer state: see :meth:`latest`)."""
        return self._read(self.path(epoch), "checkpoint", "delete it to resume from the one before")

    def _read(self, path: Path, what: str, fix: str) -> Any:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ZooError(f"{path}: {what} not found; the run folder is incomplete") from None
        except Exception as exc:
            raise ZooError(f"{path}: unreadable {what} ({type(exc).__name__}: {exc}); {fix}") from None

    def latest(self, after: int = 0, until: int | None = None) -> tuple[int, dict[str, Any]] | None:
        """The newest checkpoint that loads (of an epoch past ``after``, and at most ``until``), with
        its optimizer state under ``optimizer`` (None where it is missing: the phase's optimizer then
        starts afresh). Checkpoints written before optimizer files existed hold it inline."""
        for epoch in reversed([e for e in self.epochs() if e > after and (until is None or e <= until)]):
            try:
                state = self.load(epoch)
            except ZooError:
                continue
            if "optimizer" not in state:
                path = self.optimizer_path(epoch)
                state["optimizer"] = (self._read(path, "optimizer state", "delete it to resume without it")
                                      if path.is_file() else None)
            return epoch, state
        return None

    def mark_best(self, epoch: int, score: dict[str, Any]) -> None:
        atomic_write_json(self.folder / "best.json", {"epoch": epoch, **score})

    def best(self) -> dict[str, Any] | None:
        path = self.folder / "best.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def prune(self, keep: set[int]) -> None:
        """Remove every epoch's weights but ``keep``'s (a recipe whose checkpoints are whole
        encoders keeps the best and the newest, not every round)."""
        for epoch in self.epochs():
            if epoch not in keep:
                self.path(epoch).unlink(missing_ok=True)
