"""A backbone with a task's head, and how it learns one epoch: what every recipe's steps share.

The loop (:mod:`zoo.train.loop`) decides when; the :class:`Learner` knows how: phase 0 trains the
head on cached embeddings of the frozen backbone (the feature cache, computed once by the frozen
pass); phase k >= 1 unfreezes the top k stages with small, discriminative learning rates, a
warmup and a cosine decay, BatchNorm statistics frozen, images augmented.

A dense task (detection, segmentation) learns by the steps of :mod:`zoo.train.dense`; each set's
embeddings come from :mod:`zoo.train.embedding`. Randomness is a function
of (seed, phase, epoch, salt), so a killed run resumed from its last checkpoint ends exactly where a
straight run would. Under torch.distributed the unfrozen steps go through one
DistributedDataParallel model whose ranks each take a contiguous part of every global batch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from zoo.backbone import Backbone
from zoo.batches import derive_seed, global_batches, make_loader
from zoo.distributed import all_reduce_sum, world
from zoo.runs.model import Network
from zoo.tasks.contract import Score, Targets, TaskContext
from zoo.threads import thread_budget, torch_threads
from zoo.train.dense import MAPS_LIMIT, DenseSteps
from zoo.train.embedding import SetEmbeddings
from zoo.train.loop import Diverged
from zoo.train.stepping import autocast, freeze_batchnorm, joined, progress_bar, schedule

__all__ = ["Learner", "schedule", "freeze_batchnorm", "MAPS_LIMIT"]


class Learner(DenseSteps):
    """The network of one run (backbone + head), its loss and its sets' targets and features."""

    def __init__(self, backbone: Backbone, head: nn.Module, task: Any, context: TaskContext, *,
                 sets: dict[str, Any], targets: dict[str, Targets], fetched: Any, device: torch.device,
                 log: Callable[[str], None] = print, progress: bool = True, run_dir: Any = None,
                 network: nn.Module | None = None) -> None:
        options = context.options
        self.task, self.context, self.options = task, context, options
        self.sets, self.targets = sets, targets
        self.run_dir = run_dir
        self.device = device
        self.log = log
        self.progress = progress and sys.stderr.isatty()
        self.fetched = fetched
        # a dense task's network (its ``head`` holds every new module), else the backbone and the head
        self.dense = network is not None
        self.model = (network if self.dense else Network(backbone, head)).to(device)
        self.backbone = backbone
        self.pretrained = {k: v.detach().clone() for k, v in backbone.body.state_dict().items()}
        self.adapted = False  # the whole encoder was trained before the head (--recipe contrastive)
        self.stages = backbone.stages()
        self.fitted_all: dict[str, torch.Tensor] | None = None  # the cross-validated head fitted on every example
        self.maps: dict[str, Any] = {}  # a dense task's frozen feature maps per set (None: too large to keep)
        self.contrastive: dict[str, Any] | None = None  # the record of contrastive training, when it ran
        self.loss = task.loss(targets["train"], context).to(device) if task.epochs else None
        self.world = world()
        self._ddp: tuple[tuple[int, ...], nn.Module] | None = None
        images = backbone.card.modality == "image"
        channels_last = options.engine.channels_last
        self.channels_last = images if channels_last == "auto" else bool(channels_last)
        self.budget = thread_budget(options.engine.workers, decoding=images)
        self.embedded = SetEmbeddings(backbone, fetched, sets, options, device=device,
                                      channels_last=self.channels_last, log=log, progress=progress)
        self.features = self.embedded.features  # set name -> the frozen backbone's rows (or the adapted encoder's)
        self.feature_records = self.embedded.records

    @property
    def head(self) -> nn.Module:
        return self.model.head

    # ----------------------------------------------------------------- phases

    def n_phases(self) -> int:
        unfreeze = self.options.unfreezing.unfreeze
        top = len(self.stages) if unfreeze == "all" else min(int(unfreeze), len(self.stages))
        return 1 + top

    def unfrozen(self, phase: int) -> list[tuple[str, list[nn.Parameter]]]:
        """The stages that learn in a phase, output side first."""
        return list(reversed(self.stages[len(self.stages) - phase:])) if phase > 0 else []

    def phase_length(self, phase: int) -> tuple[int, int]:
        """(epochs, patience) of a phase: a head on cached embeddings has the head's; a phase
        through the backbone (every phase of a dense task) the unfreezing's."""
        head, unfreezing = self.options.head, self.options.unfreezing
        if phase == 0 and not self.dense:
            return head.epochs, head.patience
        return unfreezing.epochs, unfreezing.patience

    def optimizer(self, phase: int) -> torch.optim.Optimizer:
        head, unfreezing = self.options.head, self.options.unfreezing
        self.backbone.freeze()
        if phase == 0 and not self.dense:
            return torch.optim.AdamW(self.model.head.parameters(), lr=head.lr, weight_decay=head.weight_decay)
        groups = [{"params": list(self.model.head.parameters()), "lr": unfreezing.backbone_lr * 10, "name": "head"}]
        for depth, (name, params) in enumerate(self.unfrozen(phase)):
            for p in params:
                p.requires_grad_(True)
            if params:
                groups.append({"params": params, "lr": unfreezing.backbone_lr * unfreezing.lr_decay ** depth,
                               "name": name})
        for group in groups:
            group["base_lr"] = group["lr"]  # the peak of the phase's warmup + cosine schedule
        return torch.optim.AdamW(groups, weight_decay=head.weight_decay)

    # ----------------------------------------------------------------- state

    def trained_body(self, phase: int) -> dict[str, torch.Tensor]:
        names = {id(p) for _, params in self.unfrozen(phase) for p in params}
        return {k: v.detach().cpu().clone() for k, v in self.backbone.body.named_parameters() if id(v) in names}

    def final_body(self, phase: int) -> dict[str, torch.Tensor]:
        """The body's trained parameters for final.pt: every one after contrastive training (the
        checkpoints of the head's epochs leave the adapted encoder out: one copy of it is enough)."""
        if self.adapted:
            return {k: v.detach().cpu().clone() for k, v in self.backbone.body.named_parameters()}
        return self.trained_body(phase)

    def state(self, phase: int) -> dict[str, Any]:
        """What a checkpoint holds: the head and the stages trained so far."""
        return {"head": {k: v.detach().cpu() for k, v in self.model.head.state_dict().items()},
                "body": self.trained_body(phase)}

    def state_of_head_only(self) -> dict[str, Any]:
        """The checkpoint of the cross-validated head on the untouched (or adapted) body."""
        return {"head": self.fitted_all, "body": {}}

    def restore(self, state: dict[str, Any]) -> None:
        """Pretrained body, then the checkpoint's trained stages and head."""
        from zoo.errors import ZooError

        body = self.backbone.body
        body.load_state_dict(self.pretrained)
        unexpected = body.load_state_dict(state["body"], strict=False).unexpected_keys
        if unexpected:
            raise ZooError(f"checkpoint does not fit the backbone (unexpected {', '.join(unexpected[:3])}); "
                           f"was the run made with another model?")
        self.model.head.load_state_dict(state["head"])

    def restore_pretrained(self) -> None:
        """The body as pulled, or as adapted before the head (the head is left to the caller)."""
        self.backbone.body.load_state_dict(self.pretrained)

    def adopt_encoder(self) -> None:
        """The body as it is now becomes the one the head's phases start from and restore: the
        encoder adapted by contrastive training. Its embeddings come from PyTorch (the frozen pass
        and the feature cache hold the pulled weights'), computed here for every set."""
        self.pretrained = {k: v.detach().clone() for k, v in self.backbone.body.state_dict().items()}
        self.adapted = True
        for name, dataset in self.sets.items():
            if dataset is None:
                continue
            started = time.perf_counter()
            self.features[name] = self.encode(dataset)
            self.feature_records[name] = {"hit": False, "seconds": time.perf_counter() - started,
                                          "engine": {"engine": "torch", "encoder": "adapted (contrastive)"}}

    # ----------------------------------------------------------------- features

    def embeddings(self, name: str) -> torch.Tensor:
        """The frozen backbone's features of set ``name`` (computed once)."""
        return self.embedded.of(name)

    def encode(self, dataset: Any) -> torch.Tensor:
        """Embeddings of ``dataset`` by the encoder as it is now."""
        return self.embedded.encode(dataset)

    @torch.no_grad()
    def outputs(self, name: str, phase: int, dataset: Any = None) -> Any:
        """The head's outputs for a whole set (``name``, or ``dataset`` embedded now): from cached
        embeddings while the backbone is untouched (phase 0), else through the backbone as it is;
        a dense task's network answers each image (a list, one dict of numpy arrays per image)."""
        self.model.eval()
        if self.dense:
            return self._answers(name, phase, dataset)
        if phase == 0 and dataset is None:
            return self.model.head(self.embeddings(name).to(self.device)).float().cpu()
        data = dataset if dataset is not None else self.sets[name]
        return self.model.head(self.embedded.now([e.item for e in data.examples]).to(self.device)).float().cpu()

    def _values(self, name: str | None, count: int) -> Any:
        """The targets of set ``name`` for the loader; another dataset (an export's samples) gets none."""
        import numpy as np

        return self.targets[name].values if name in self.targets else np.full(count, None, dtype=object)

    def _loader(self, items: list[Any], values: Any, seed: int | None, augmenting: str, *,
                shuffle: bool) -> Any:
        """Batches of the run's examples: ``(inputs, positions)`` (targets of any shape are taken
        from their values by position), or a dense task's ``(images, per-image targets)`` made by
        its sampler (image and targets transformed together)."""
        size = self.options.engine.batch_size
        rank = (self.world.rank, self.world.size) if shuffle else None
        if self.dense:
            sampler = self.task.sampler(self.backbone.card.input, self.context)
            return make_loader(self.backbone, items, list(values), batch_size=size, seed=seed, shuffle=shuffle,
                               augmenting=augmenting, workers=self.budget.workers, rank=rank, sample=sampler,
                               collate=sampler.collate)
        return make_loader(self.backbone, items, list(range(len(items))), batch_size=size, seed=seed, shuffle=shuffle,
                           augmenting=augmenting, workers=self.budget.workers, rank=rank)

    def judge(self, name: str, phase: int, dataset: Any = None, values: Any = None) -> Score:
        """The task's held-out loss and metric of a set (or of ``dataset`` with ``values``)."""
        outputs = self.outputs(name, phase, dataset)
        return self.task.judge(outputs, self.targets[name].values if values is None else values, self.context)

    # ----------------------------------------------------------------- one epoch

    def train_epoch(self, phase: int, phase_epoch: int, optimizer: torch.optim.Optimizer, *, data: Any = None,
                    values: Any = None, salt: int = 0) -> dict[str, Any]:
        """One epoch of ``phase`` on the training set (or ``data`` with its target ``values``: a
        fold's part, whose randomness ``salt`` keeps apart from the run's); returns the epoch's
        training loss and the task's metric on it."""
        seed = derive_seed(self.options.seed, phase, phase_epoch, *((salt,) if salt else ()))
        torch.manual_seed(seed)
        if phase == 0 and not self.dense:
            return self._head_epoch(optimizer, seed)
        if phase == 0 and data is None and self.frozen_maps("train") is not None:
            return self._maps_epoch(phase_epoch, optimizer, seed)
        data = self.sets["train"] if data is None else data
        values = self.targets["train"].values if values is None else values
        values = values if self.dense else torch.as_tensor(values)
        self.model.train()
        freeze_batchnorm(self.model.backbone)
        items = [e.item for e in data.examples]
        size = self.options.engine.batch_size
        batches = global_batches(len(items), seed, True, size)
        loader = self._loader(items, values, seed, self.options.unfreezing.augment, shuffle=True)
        model = self._wrapped()
        bar = progress_bar(self.progress, len(items), f"phase {phase} epoch {phase_epoch}")
        steps = len(batches)
        total, count = 0.0, 0
        outputs_seen, values_seen = [], []
        with torch_threads(self.budget.threads), joined(model):
            for step, (inputs, labels) in enumerate(loader):
                schedule(optimizer, (phase_epoch * steps + step) / (self.options.unfreezing.epochs * steps),
                         self.options.unfreezing.warmup)
                if self.dense:
                    loss, seen = self._dense_loss(model, inputs, labels, len(batches[step]))
                else:  # the loader carries each example's position: targets of any shape are taken from ``values``
                    target = values[labels].to(self.device)
                    whole = values[batches[step]]
                    with autocast(self.device):
                        out = self._forward(inputs, model)
                    loss = self.loss(out.float(), target) / self.loss.weight_of(whole) * self.world.size
                    seen = len(target)
                    outputs_seen.append(out.detach().float().cpu())
                    values_seen.append(target.cpu())
                self._step_on(optimizer, loss)
                total += loss.item() / self.world.size * len(batches[step])
                count += seen
                if bar is not None:
                    bar.update(seen * self.world.size)
        if bar is not None:
            bar.close()
        if self.dense:  # its metric needs the network's answers (eval mode), measured on validation only
            total, count = all_reduce_sum((total, count))
            return {"train_loss": total / max(1, count), "train_metric": None}
        metric = self._train_metric(outputs_seen, values_seen)
        total, metric_sum, count = all_reduce_sum((total, metric * count, count))
        return {"train_loss": total / max(1, count), "train_metric": metric_sum / max(1, count)}

    def _head_epoch(self, optimizer: torch.optim.Optimizer, seed: int) -> dict[str, Any]:
        """An epoch of the head alone, on the cached training embeddings (never a fold's)."""
        x = self.embeddings("train")
        y = torch.as_tensor(self.targets["train"].values)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        self.model.head.train()
        total, outputs_seen, values_seen = 0.0, [], []
        for start in range(0, len(x), self.options.engine.batch_size):
            index = order[start:start + self.options.engine.batch_size]
            out = self.model.head(x[index].to(self.device))
            target = y[index].to(self.device)
            loss = self.loss(out.float(), target) / self.loss.weight_of(target)
            if not torch.isfinite(loss):
                raise Diverged()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
            outputs_seen.append(out.detach().float().cpu())
            values_seen.append(target.cpu())
        return {"train_loss": total / len(x), "train_metric": self._train_metric(outputs_seen, values_seen)}

    def _train_metric(self, outputs: list[torch.Tensor], values: list[torch.Tensor]) -> float:
        if not outputs:
            return 0.0
        return float(self.task.judge(torch.cat(outputs), torch.cat(values).numpy(), self.context).metric)

    def _step_on(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """A step on an already normalised loss; a NaN on any rank stops every rank."""
        finite = bool(torch.isfinite(loss))
        if self.world.distributed:
            finite = all_reduce_sum((0.0 if finite else 1.0,))[0] == 0
        if not finite:
            raise Diverged()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def _wrapped(self) -> nn.Module:
        """The network for a training step: itself, or under torch.distributed wrapped in
        DistributedDataParallel over the parameters that learn now. A phase that unfreezes more
        stages gets a new wrapper (DDP fixes its parameters when it is made); the old one is
        dropped first, so its gradient hooks never fire beside the new ones. Frozen parameters
        are not in the wrapper, so no ``find_unused_parameters``; BatchNorm statistics do not
        move (eval mode), so no buffers are broadcast."""
        if not self.world.distributed:
            return self.model
        learning = tuple(id(p) for p in self.model.parameters() if p.requires_grad)
        if self._ddp is None or self._ddp[0] != learning:
            import gc

            from torch.nn.parallel import DistributedDataParallel

            self._ddp = None
            gc.collect()
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self._ddp = (learning, DistributedDataParallel(self.model, device_ids=ids, forward_sync_buffers=False))
        return self._ddp[1]

    def _forward(self, inputs: Any, model: nn.Module | None = None) -> torch.Tensor:
        model = model or self.model
        if isinstance(inputs, dict):
            return model(**{k: v.to(self.device) for k, v in inputs.items()})
        return model(self._on_device(inputs))

    def _on_device(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(self.device, non_blocking=True)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs


