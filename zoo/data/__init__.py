"""The data layer of ``zoo finetune``: datasets read by pluggable formats, checked, and split.

``open_dataset`` finds the format that reads a path (plugins' formats first, then zoo's own:
``csv``, ``digits``, ``folder``, ``jsonl``), loads it and checks every example; ``make_splits``
makes the train / validation / test sets. The names load on first use: ``zoo.data.formats`` is a
built-in plugin imported whenever a plugin host starts, and importing it imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.data.dataset import Dataset, Example, Problem
    from zoo.data.opening import format_order, open_dataset
    from zoo.data.splits import Splits, make_splits

_LAZY = {
    "Example": "zoo.data.dataset",
    "Problem": "zoo.data.dataset",
    "Dataset": "zoo.data.dataset",
    "Splits": "zoo.data.splits",
    "make_splits": "zoo.data.splits",
    "open_dataset": "zoo.data.opening",
    "format_order": "zoo.data.opening",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
