"""Fine-tuning: the transfer-learning recipe behind ``zoo finetune`` (see :mod:`zoo.train.run`).

Names load on first use, so the CLI's option lists (``zoo.runs.options``) import no trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.runs.record import Run, open_run
    from zoo.train.run import finetune

_LAZY = {"finetune": "zoo.train.run", "Run": "zoo.runs.record", "open_run": "zoo.runs.record"}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
