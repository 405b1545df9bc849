"""Run folders as typed records (:mod:`zoo.runs.record`), and a run's network rebuilt from one
(:mod:`zoo.runs.model`): what embedding, export and the report read, below training."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.runs.model import load_model
    from zoo.runs.record import Run, RunWriter, open_run, read_run_json

_LAZY = {"Run": "zoo.runs.record", "RunWriter": "zoo.runs.record", "open_run": "zoo.runs.record",
         "read_run_json": "zoo.runs.record", "load_model": "zoo.runs.model"}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
