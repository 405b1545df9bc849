"""A dense task's steps (detection, segmentation: :class:`zoo.tasks.contract.DenseTask`), the part
of :class:`zoo.train.learner.Learner` that only such a task takes.

A dense network holds its own loss (torchvision's detectors return their losses) and answers each
picture with a dict of arrays. Its phase 0 is like an unfrozen phase with no stage unfrozen (the
same optimizer groups and schedule) on the frozen backbone's feature maps, computed once per set
and kept in memory as a head's embeddings are (:meth:`DenseSteps.frozen_maps`); maps that would take
more than :data:`MAPS_LIMIT` are not kept, and phase 0 then runs through the frozen backbone.

A mixin rather than a second object: these steps use the learner's network, loader, wrapper and
step exactly as its other steps do; apart, the classification path reads on one screen.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from zoo.batches import global_batches
from zoo.distributed import all_reduce_sum, shard
from zoo.threads import torch_threads
from zoo.train.stepping import autocast, freeze_batchnorm, joined, schedule, to_numpy

__all__ = ["DenseSteps", "MAPS_LIMIT"]

#: A dense task's phase 0 keeps the frozen backbone's feature maps of its sets in memory up to
#: this many bytes (efficientnet_lite0 at 224 pixels: 0.28 MB a picture).
MAPS_LIMIT = 2 << 30


class DenseSteps:
    """Phase 0 on cached maps, per-picture answers, the network's own loss (mixed into Learner)."""

    maps: dict[str, Any]  # set name -> (maps, per-image targets), or None: too large to keep

    @torch.no_grad()
    def frozen_maps(self, name: str) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]] | None:
        """The frozen backbone's feature maps of set ``name`` (every rank computes all) and its
        un-augmented per-image targets, computed once, for phase 0; None when they would take more
        than :data:`MAPS_LIMIT` (phase 0 then runs through the backbone)."""
        if name in self.maps:
            return self.maps[name]
        dataset = self.sets[name]
        items = [e.item for e in dataset.examples]
        started = time.perf_counter()
        parts: list[dict[str, torch.Tensor]] = []
        targets: list[dict[str, torch.Tensor]] = []
        self.model.eval()
        self.maps[name] = None
        with torch_threads(self.budget.threads):
            for inputs, batch in self._loader(items, self._values(name, len(items)), None, "none", shuffle=False):
                maps = self.backbone(self._on_device(inputs))
                # a picture's maps, and its targets (an instance segmenter's are a mask per object)
                each = (sum(v[0].numel() * v.element_size() for v in maps.values())
                        + sum(t.numel() * t.element_size() for target in batch for t in target.values()) / len(batch))
                if not parts and each * len(items) > MAPS_LIMIT:
                    self.log(f"  {name}: the feature maps and targets of {len(items)} pictures would take over "
                             f"{MAPS_LIMIT >> 30} GiB; phase 0 runs through the frozen backbone")
                    return None
                parts.append({k: v.cpu() for k, v in maps.items()})
                targets += batch
        if parts:
            self.maps[name] = ({k: torch.cat([p[k] for p in parts]) for k in parts[0]}, targets)
            self.log(f"  {name}: feature maps of {len(items)} pictures computed in {time.perf_counter() - started:.1f}s")
        return self.maps[name]

    def _answers(self, name: str, phase: int, dataset: Any = None) -> list[dict[str, Any]]:
        """A dense network's answer for each example of set ``name`` (or of ``dataset``): from the
        frozen maps in phase 0 (every rank answers all), else through the backbone (inputs as the
        task makes them, not augmented), each rank its share, every rank getting all, in order."""
        cached = self.frozen_maps(name) if phase == 0 and dataset is None else None
        answers: list[dict[str, Any]] = []
        with torch_threads(self.budget.threads):
            if cached is not None:
                maps, targets = cached
                size = self.options.engine.batch_size
                for start in range(0, len(targets), size):
                    answers += self.model(self._blank(len(targets[start:start + size])),
                                          features={k: v[start:start + size].to(self.device) for k, v in maps.items()})
                return [to_numpy(answer) for answer in answers]
            dataset = dataset if dataset is not None else self.sets[name]
            items = [e.item for e in dataset.examples]
            part = shard(len(items), self.world)
            values = self._values(name if dataset is self.sets.get(name) else None, len(items))
            for inputs, _ in self._loader(items[part.start:part.stop], values[part.start:part.stop], None, "none",
                                          shuffle=False):
                answers += self.model(self._on_device(inputs))
        mine = [to_numpy(answer) for answer in answers]
        if not self.world.distributed:
            return mine
        import torch.distributed as dist

        pieces: list[Any] = [None] * self.world.size
        dist.all_gather_object(pieces, mine)
        return [answer for piece in pieces for answer in piece]

    def _blank(self, count: int) -> torch.Tensor:
        """Pictures that are not read (the network gets the maps): what tells it their size."""
        height, width = self.backbone.card.input.size
        return torch.zeros(1, 3, height, width, device=self.device).expand(count, -1, -1, -1)

    def _maps_epoch(self, phase_epoch: int, optimizer: torch.optim.Optimizer, seed: int) -> dict[str, Any]:
        """An epoch of a dense task's phase 0 on the frozen backbone's cached maps: the batches a
        loader would make (the epoch's seeded order), each rank its part of each."""
        maps, targets = self.frozen_maps("train")
        self.model.train()
        freeze_batchnorm(self.model.backbone)
        model = self._wrapped()
        batches = global_batches(len(targets), seed, True, self.options.engine.batch_size)
        total, count = 0.0, 0
        with torch_threads(self.budget.threads), joined(model):
            for step, whole in enumerate(batches):
                schedule(optimizer, (phase_epoch * len(batches) + step) / (self.options.unfreezing.epochs * len(batches)),
                         self.options.unfreezing.warmup)
                part = shard(len(whole), self.world)
                mine = whole[part.start:part.stop]
                if not mine:
                    continue
                features = {k: v[mine].to(self.device) for k, v in maps.items()}
                loss, seen = self._dense_loss(model, None, [targets[i] for i in mine], len(whole), features)
                self._step_on(optimizer, loss)
                total += loss.item() / self.world.size * len(whole)
                count += seen
        total, count = all_reduce_sum((total, count))
        return {"train_loss": total / max(1, count), "train_metric": None}

    def _dense_loss(self, model: nn.Module, images: torch.Tensor | None, targets: list[dict[str, torch.Tensor]],
                    whole: int, features: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, int]:
        """A dense network's loss on this rank's part of a batch (the network computes it from the
        per-image targets; from the backbone's ``features`` when given), weighted like a task loss:
        summed over the part, over the whole batch."""
        targets = [{k: v.to(self.device) for k, v in target.items()} for target in targets]
        images = self._blank(len(targets)) if features is not None else self._on_device(images)
        with autocast(self.device):
            losses = model(images, targets, **({"features": features} if features is not None else {}))
        return self.loss(losses, targets) / self.loss.weight_of(range(whole)) * self.world.size, len(targets)

