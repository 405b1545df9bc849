"""Embeddings of a dataset, computed once by a frozen pass and cached on disk.

Shared by ``zoo finetune`` (stage 1), ``zoo embed`` and ``zoo fewshot``. The key
covers everything that determines the numbers: the backbone (its name, its weight files' hashes,
its cut point), the preprocessing (the card's input spec) and the data's content. Another head or
learning rate on the same data reuses them; a changed image or new weights do not.

The engine is not part of the key: onnxruntime's features are used only after being checked
equal to PyTorch's (``zoo export``'s tolerances) on the data's own items, so features from either
engine are interchangeable. CUDA autocast features are not (cosine >= 0.999 only): they are keyed
apart. The record says which engine produced them.

Each entry is ``KEY.npy`` and its record ``KEY.json``, written after the array, holding the
array's sha256 and shape: an entry is used only when its bytes hash to the record's (reading
and hashing 12 MB, the digits demo's largest, takes about 10 ms), so garbage bytes, a truncated
file or rows reordered in place are computed again and replaced, said in one line. A cache that
cannot be written (a read-only ``$ZOO_HOME``, a full disk, a file where its folder should be) is
said once and the features are used uncached: the work is never lost to the cache.
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
#: Cache problems already said in this process (a folder that cannot be written is said once).
_SAID: set[str] = set()


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
                      precision: str | None = None, log: Callable[[str], None] | None = None
                      ) -> tuple[Any, dict[str, Any]]:
    """Embeddings of a ``zoo.data.Dataset`` as a tensor: :func:`cached_features` with no layer.

    Returns the tensor and a small record (key, path, hit, seconds, and the engine that computed
    them) for the run folder.
    """
    import torch

    from zoo.frozen.graph import EMBEDDING

    arrays, record = cached_features(card, fetched, dataset, frozen, (), batch_size=batch_size, progress=progress,
                                     root=root, precision=precision, log=log)
    return torch.from_numpy(arrays[EMBEDDING]), record


def cached_features(card: ModelCard, fetched: Fetched | None, dataset: Any, frozen: Callable[[], Any],
                    layers: Sequence[str], *, batch_size: int = 64, progress: Any = None, root: Path | None = None,
                    precision: str | None = None, log: Callable[[str], None] | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The embedding and each of ``layers`` (pooled) for a ``zoo.data.Dataset``, from the cache,
    computing them all on a miss in one pass of the :class:`zoo.frozen.passes.FrozenPass` that
    ``frozen()`` gives (called only then: a hit needs no engine; built with ``features=layers``)
    and storing them. ``precision``: see :func:`feature_key`; by default the ``precision`` of
    ``frozen`` (a :class:`zoo.frozen.choice.LazyPass`), else ``fp32``.

    Returns ``{"embedding": array, layer: array, ...}`` and a record (the embedding's key and path,
    hit, seconds, the engine that computed them). Each array lands atomically, so an interrupted
    probe starts again from what was stored; a damaged entry is computed again and replaced.
    ``log``: where the cache's one-line notes go (default: stderr), each said once per process.
    """
    import numpy as np

    from zoo.frozen.graph import EMBEDDING

    if getattr(getattr(frozen, "backbone", None), "cut", None):
        # the keys name the card's cut point: a backbone cut elsewhere caches its layers (features=)
        raise ValueError("cached_features needs the card's cut point; pass the cut's layers as `layers` instead")
    precision = precision or getattr(frozen, "precision", "fp32")
    say = _once(log)
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
        array = _read_entry(path, (len(dataset), dims[name]), say)
        if array is not None:
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
            if not _write_entry(path, outputs[name], made_by, say):
                where["cached"] = False
                break
    return outputs, {**where, "hit": False, "seconds": time.perf_counter() - started, **made_by}


def _torch(array: Any) -> Any:
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _numpy(tensor: Any) -> Any:
    return tensor.cpu().numpy()


def _read_meta(path: Path) -> dict[str, Any]:
    """Which engine made a cached entry (read after :func:`_read_entry` checked it)."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {"engine": meta["engine"]} if isinstance(meta, dict) and "engine" in meta else {}


def _read_entry(path: Path, shape: tuple[int, int | None], say: Callable[..., None]) -> Any:
    """The cached array at ``path`` when its bytes match its record (sha256 and shape) and it has
    ``shape`` (a None width: any); None when it is missing, damaged or someone else's (said in one
    line when it exists but is damaged: it will be computed again and replaced)."""
    import numpy as np

    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        say(f"cached features {path}: unreadable or without its record ({exc.__class__.__name__}); computing them again")
        return None
    if not isinstance(meta, dict) or "sha256" not in meta:
        return None  # an entry from before records held a checksum: computed again, silently
    if meta["sha256"] != hashlib.sha256(data).hexdigest():
        say(f"cached features {path}: damaged (its bytes do not match the sha256 recorded in "
                  f"{path.with_suffix('.json').name}); computing them again")
        return None
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError):
        return None
    width = shape[1] or (array.shape[1] if array.ndim == 2 else -1)
    if array.ndim != 2 or array.shape != (shape[0], width) or list(array.shape) != meta.get("shape"):
        return None  # another data set's or layer's size: not this entry (a key collision would be a bug)
    return array


def _write_entry(path: Path, array: Any, made_by: dict[str, Any], say: Callable[..., None]) -> bool:
    """Store ``array`` at ``path`` and then its record (sha256, shape, engine); False, said once,
    when the cache cannot be written: the caller goes on with the features it has."""
    import numpy as np

    from zoo.errors import StorageError, storage_error

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    record = {"sha256": hashlib.sha256(data).hexdigest(), "shape": list(array.shape), **made_by}
    fix = "set ZOO_HOME to a writable folder with space"
    try:
        path.with_suffix(".json").unlink(missing_ok=True)  # an array never sits beside another's record
        atomic_write_bytes(path, data, fix=fix)
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(record, indent=2).encode(), fix=fix)
    except OSError as exc:
        detail = str(exc if isinstance(exc, StorageError) else storage_error(exc, path, fix))
        say(f"feature cache not used: {detail} (the features are used without being cached)",
                  key=str(path.parent))
        return False
    return True


def _once(log: Callable[[str], None] | None) -> Callable[..., None]:
    """``log`` (default: stderr) saying each cache note once per process: a read-only cache is
    said for its first entry, not for every set and layer of every run."""

    def say(text: str, key: str | None = None) -> None:
        if (key or text) in _SAID:
            return
        _SAID.add(key or text)
        if log is not None:
            log(text)
        else:
            import sys

            print(text, file=sys.stderr, flush=True)

    return say


def _default_root() -> Path:
    from zoo.settings import zoo_home

    return zoo_home() / "features"
