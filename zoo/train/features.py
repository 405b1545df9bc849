"""Embeddings of a dataset, computed once and cached on disk.

The key covers everything that determines the numbers: the backbone (its name, its weight files'
hashes, its cut point), the preprocessing (the card's input spec) and the data's content. Another
head or learning rate on the same data reuses them; a changed image or new weights do not.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.backbone import Backbone
from zoo.card import ModelCard
from zoo.fetched import Fetched
from zoo.settings import zoo_home
from zoo.train.batches import make_loader
from zoo.atomic import atomic_write_bytes

__all__ = ["feature_key", "embed_items", "cached_embeddings"]

_VERSION = 1


def feature_key(card: ModelCard, fetched: Fetched | None, data_fingerprint: str) -> str:
    """The cache key of one dataset's embeddings under one backbone."""
    identity = {
        "version": _VERSION,
        "model": card.name,
        "weights": sorted(f.sha256 for f in fetched.files) if fetched else "random",
        "cut": [card.embedding.node, card.embedding.dim, card.embedding.pooling],
        "input": repr(card.input),
        "data": data_fingerprint,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


@torch.no_grad()
def embed_items(backbone: Backbone, items, labels, *, batch_size: int, device: torch.device,
                workers: int | None = None, progress: Any = None) -> torch.Tensor:
    """Embeddings of ``items`` in order, in eval mode, without augmentation."""
    backbone.eval()
    loader = make_loader(backbone, items, labels, batch_size=batch_size, workers=workers)
    chunks = []
    for inputs, _ in loader:
        with _autocast(device):
            if isinstance(inputs, dict):
                out = backbone(**{k: v.to(device) for k, v in inputs.items()})
            else:
                out = backbone(inputs.to(device, non_blocking=True))
        chunks.append(out.float().cpu())
        if progress is not None:
            progress.update(len(out))
    return torch.cat(chunks) if chunks else torch.zeros(0, backbone.feature_dim)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def cached_embeddings(backbone: Backbone, fetched: Fetched | None, dataset, *, batch_size: int,
                      device: torch.device, workers: int | None = None, progress: Any = None,
                      root: Path | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Embeddings of a ``zoo.data.Dataset`` from the cache, computing and storing them on a miss.

    Returns the tensor and a small record (key, path, hit, seconds) for the run folder.
    """
    key = feature_key(backbone.card, fetched, dataset.fingerprint())
    folder = (root or zoo_home() / "features") / backbone.card.name.replace("/", "--")
    path = folder / f"{key}.npy"
    started = time.perf_counter()
    if path.is_file():
        try:
            array = np.load(path, allow_pickle=False)
            if array.shape == (len(dataset), backbone.feature_dim):
                if progress is not None:
                    progress.update(len(dataset))
                return torch.from_numpy(array), {"key": key, "path": str(path), "hit": True,
                                                 "seconds": time.perf_counter() - started}
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed and replaced
    items = [e.item for e in dataset.examples]
    labels = [e.label for e in dataset.examples]
    embeddings = embed_items(backbone, items, labels, batch_size=batch_size, device=device, workers=workers,
                             progress=progress)
    buffer = io.BytesIO()
    np.save(buffer, embeddings.numpy(), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    return embeddings, {"key": key, "path": str(path), "hit": False, "seconds": time.perf_counter() - started}
