"""Embeddings of a dataset, computed once by a frozen pass and cached on disk.

Shared by ``zoo finetune`` (stage 1), ``zoo embed`` and ``zoo fewshot``. The key
covers everything that determines the numbers: the backbone (its name, its weight files' hashes,
its cut point), the preprocessing (the card's input spec) and the data's content. Another head or
learning rate on the same data reuses them; a changed image or new weights do not.

The engine is not part of the key: onnxruntime's features are used only after being checked
equal to PyTorch's (``zoo export``'s tolerances) on the data's own items, so features from either
engine are interchangeable. CUDA autocast features are not (cosine >= 0.999 only): they are keyed
apart. The record says which engine produced them.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_write_bytes
from zoo.card import ModelCard
from zoo.distributed import broadcast, broadcast_rows, gather_rows, main_first, shard, world
from zoo.fetched import Fetched
from zoo.preprocess import VERSION as PIXELS_VERSION

__all__ = ["feature_key", "cached_embeddings", "cached_features"]

_VERSION = 1


def feature_key(card: ModelCard, fetched: Fetched | None, data_fingerprint: str, precision: str = "fp32",
                layer: str | None = None) -> str:
    """The cache key of one dataset's embeddings under one backbone, computed in ``precision``
    (``fp32``: either engine, validated equal; ``autocast``: CUDA's, which keeps its own); with
    ``layer``, of that intermediate feature, pooled, instead of the embedding."""
    identity: dict[str, Any] = {
        "version": _VERSION,
        "model": card.name,
        "weights": sorted(f.sha256 for f in fetched.files) if fetched else "random",
        "cut": [card.embedding.node, card.embedding.dim, card.embedding.pooling],
        "input": _input_identity(card.input) + (f"|pixels-v{PIXELS_VERSION}" if card.modality == "image" else ""),
        "data": data_fingerprint,
    }
    if precision != "fp32":  # fp32 keys stay as they were before engines existed
        identity["precision"] = precision
    if layer is not None:
        identity["layer"] = layer
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def _input_identity(spec: Any) -> str:
    """The input spec as the key spells it: its repr, without fields added later at their default
    (so a new field, ``crop_mode``, leaves existing caches and tables valid)."""
    text = repr(spec).replace(", front_end=None", "")  # a front end's spec, when there is one, is part of it
    return text.replace(", crop_mode=None", "") if spec.crop_mode is None else text


def cached_embeddings(card: ModelCard, fetched: Fetched | None, dataset: Any, frozen: Callable[[], Any], *,
                      batch_size: int, progress: Any = None, root: Path | None = None,
                      precision: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Embeddings of a ``zoo.data.Dataset`` as a tensor: :func:`cached_features` with no layer.

    Returns the tensor and a small record (key, path, hit, seconds, and the engine that computed
    them) for the run folder.
    """
    import torch

    from zoo.frozen.graph import EMBEDDING

    arrays, record = cached_features(card, fetched, dataset, frozen, (), batch_size=batch_size, progress=progress,
                                     root=root, precision=precision)
    return torch.from_numpy(arrays[EMBEDDING]), record


def cached_features(card: ModelCard, fetched: Fetched | None, dataset: Any, frozen: Callable[[], Any],
                    layers: Sequence[str], *, batch_size: int = 64, progress: Any = None, root: Path | None = None,
                    precision: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The embedding and each of ``layers`` (pooled) for a ``zoo.data.Dataset``, from the cache,
    computing them all on a miss in one pass of the :class:`zoo.frozen.passes.FrozenPass` that
    ``frozen()`` gives (called only then: a hit needs no engine; built with ``features=layers``)
    and storing them. ``precision``: see :func:`feature_key`; by default the ``precision`` of
    ``frozen`` (a :class:`zoo.frozen.choice.LazyPass`), else ``fp32``.

    Returns ``{"embedding": array, layer: array, ...}`` and a record (the embedding's key and path,
    hit, seconds, the engine that computed them). Each array lands atomically, so an interrupted
    probe starts again from what was stored; a damaged entry is computed again and replaced.
    """
    import numpy as np

    from zoo.frozen.graph import EMBEDDING

    if getattr(getattr(frozen, "backbone", None), "cut", None):
        # the keys name the card's cut point: a backbone cut elsewhere caches its layers (features=)
        raise ValueError("cached_features needs the card's cut point; pass the cut's layers as `layers` instead")
    precision = precision or getattr(frozen, "precision", "fp32")
    fingerprint = dataset.fingerprint()
    folder = (root or _default_root()) / card.name.replace("/", "--")
    keys = {name: feature_key(card, fetched, fingerprint, precision, None if name == EMBEDDING else name)
            for name in (EMBEDDING, *layers)}
    paths = {name: folder / f"{key}.npy" for name, key in keys.items()}
    dims = {EMBEDDING: card.embedding.dim, **{name: card.features.get(name) for name in layers}}
    where = {"key": keys[EMBEDDING], "path": str(paths[EMBEDDING])}
    started = time.perf_counter()
    found: dict[str, Any] = {}
    for name, path in paths.items():
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            continue  # missing or damaged: computed again
        if array.ndim == 2 and len(array) == len(dataset) and array.shape[1] == (dims[name] or array.shape[1]):
            found[name] = array
    here = world()
    complete = len(found) == len(paths)
    if here.distributed:  # rank 0's cache decides, and gives its arrays to the ranks of other nodes
        complete = broadcast(complete)
        if complete:
            found = {name: _numpy(broadcast_rows(_torch(found[name]) if here.main else None)) for name in paths}
    if complete:
        if progress is not None:
            progress.update(len(dataset))
        return found, {**where, "hit": True, "seconds": time.perf_counter() - started,
                       **_read_meta(paths[EMBEDDING])}
    engine = frozen()
    items = [e.item for e in dataset.examples]
    # Under torch.distributed each rank embeds its share and every rank gets all of them; a set
    # smaller than the world is embedded whole by each (a few items, not worth the bookkeeping).
    sharded = here.distributed and len(items) >= here.size
    part = shard(len(items), here) if sharded else range(len(items))
    outputs = engine.outputs(items[part.start:part.stop], batch_size=batch_size, progress=progress)
    if sharded:
        outputs = {name: _numpy(gather_rows(_torch(outputs[name]), len(items))) for name in paths}
    made_by = {"engine": engine.record()}
    with main_first() as writing:  # one writer (rank 0); the others go on once the files are in place
        for name, path in (paths.items() if writing else ()):
            buffer = io.BytesIO()
            np.save(buffer, outputs[name], allow_pickle=False)
            atomic_write_bytes(path.with_suffix(".json"), json.dumps(made_by, indent=2).encode())
            atomic_write_bytes(path, buffer.getvalue())
    return outputs, {**where, "hit": False, "seconds": time.perf_counter() - started, **made_by}


def _torch(array: Any) -> Any:
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _numpy(tensor: Any) -> Any:
    return tensor.cpu().numpy()


def _read_meta(path: Path) -> dict[str, Any]:
    """Which engine made a cached entry (entries from before engines have no record)."""
    try:
        return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _default_root() -> Path:
    from zoo.settings import zoo_home

    return zoo_home() / "features"
