"""Each set's embeddings, as a head learns from them: by the frozen backbone (the feature cache,
computed once per set and kept) or by the encoder as it is now (PyTorch, each rank its share).

Kept apart from :class:`zoo.train.learner.Learner` (which holds one): how a set becomes rows of
features is one job, how the network learns from them another.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from zoo.backbone import Backbone
from zoo.distributed import gather_rows, shard, world
from zoo.frozen.choice import LazyPass, frozen_pass
from zoo.frozen.passes import FrozenPass
from zoo.train.stepping import progress_bar

__all__ = ["SetEmbeddings"]


class SetEmbeddings:
    """The embeddings of a run's sets: ``features`` (set name -> rows) and ``records`` (set name ->
    how they were made, for ``features/index.json``), filled on first use."""

    def __init__(self, backbone: Backbone, fetched: Any, sets: dict[str, Any], options: Any, *,
                 device: torch.device, channels_last: bool, log: Callable[[str], None], progress: bool) -> None:
        self.backbone, self.fetched, self.sets, self.options = backbone, fetched, sets, options
        self.device, self.channels_last, self.log = device, channels_last, log
        self.progress = progress and sys.stderr.isatty()
        self.world = world()
        self.features: dict[str, torch.Tensor] = {}
        self.records: dict[str, Any] = {}
        # The stage-1 pass over the pretrained backbone: built on the first cache miss, before any
        # training step, and checked on a few training and validation items.
        items = [e.item for name in ("train", "val") if sets.get(name) is not None for e in sets[name].examples]
        self.frozen = LazyPass(backbone, fetched, engine=options.engine.engine, device=device,
                               workers=options.engine.workers, check=items, channels_last=channels_last, log=log)

    def of(self, name: str) -> torch.Tensor:
        """The frozen backbone's features of set ``name``, from the feature cache (computed once)."""
        if name in self.features:
            return self.features[name]
        dataset = self.sets[name]
        engine = self.options.engine
        if self.backbone.cut:
            from zoo.layer_features import cut_features, layer_record

            x, _, record = cut_features(self.backbone.card, dataset, None, self.backbone.cut, engine=engine.engine,
                                        say=self.log, device=self.device, workers=engine.workers)
            self.features[name] = torch.from_numpy(x).float()
            self.records[name] = layer_record(record, self.backbone.cut)
            how = "from the cache" if record["cache"] == "hit" else "computed"
            self.log(f"  {name}: {len(dataset)} features at {'+'.join(self.backbone.cut)} {how} in "
                     f"{record['seconds']:.1f}s")
            return self.features[name]
        from zoo.frozen.features import cached_embeddings

        bar = progress_bar(self.progress, len(dataset), f"embedding {name}")
        self.features[name], self.records[name] = cached_embeddings(
            self.backbone.card, self.fetched, dataset, self.frozen, batch_size=max(engine.batch_size, 64),
            progress=bar, log=self.log)
        if bar is not None:
            bar.close()
        record = self.records[name]
        how = "from the cache" if record["hit"] else f"computed ({record['engine']['engine']})"
        self.log(f"  {name}: {len(dataset)} embeddings {how} in {record['seconds']:.1f}s")
        return self.features[name]

    def encode(self, dataset: Any) -> torch.Tensor:
        """Embeddings of ``dataset`` by the encoder as it is now (PyTorch, eval mode)."""
        if len(dataset) == 0:
            return torch.zeros(0, self.backbone.feature_dim)
        return self.now([e.item for e in dataset.examples])

    def now(self, items: list[Any]) -> torch.Tensor:
        """Embeddings by the backbone as it is now (PyTorch, eval mode), each rank embedding its
        share of the items and every rank getting all of them, in order."""
        part = shard(len(items), self.world)
        mine = items[part.start:part.stop]
        if mine:
            embedded = self._unfrozen_pass().embed(mine, batch_size=max(self.options.engine.batch_size, 64))
            embedded = embedded.float().cpu()
        else:
            embedded = torch.zeros(0, self.backbone.feature_dim)
        return gather_rows(embedded, len(items))

    def _unfrozen_pass(self) -> FrozenPass:
        """Inference through the backbone as it is being trained: PyTorch, on the run's threads."""
        return frozen_pass(self.backbone, None, engine="torch", device=self.device,
                           workers=self.options.engine.workers, channels_last=self.channels_last)
