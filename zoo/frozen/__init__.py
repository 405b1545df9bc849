"""The frozen pass: a backbone run without training, on the fastest engine validated equal to PyTorch.

- :mod:`zoo.frozen.choice`: :func:`frozen_pass` chooses the engine (onnxruntime or PyTorch) and checks it;
- :mod:`zoo.frozen.passes`: :class:`FrozenPass` runs it over many items;
- :mod:`zoo.frozen.compiled`: the cut backbone compiled to ONNX once, cached, locked, hash-checked;
- :mod:`zoo.frozen.graph`: the one module both engines run (embedding and pooled features);
- :mod:`zoo.frozen.features`: the on-disk feature cache that fine-tuning, embedding and probing share.

Names load on first use: importing this package imports neither torch nor onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.frozen.choice import ENGINES, frozen_pass
    from zoo.frozen.features import cached_embeddings, feature_key
    from zoo.frozen.passes import FrozenPass, spread

_LAZY = {
    "FrozenPass": "zoo.frozen.passes",
    "spread": "zoo.frozen.passes",
    "frozen_pass": "zoo.frozen.choice",
    "ENGINES": "zoo.frozen.choice",
    "cached_embeddings": "zoo.frozen.features",
    "feature_key": "zoo.frozen.features",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
