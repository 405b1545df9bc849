"""The transfer-learning recipe: a new head on cached embeddings, then gradual unfreezing.

Phases run in order: phase 0 trains the head on the frozen backbone's cached embeddings; phase
k >= 1 unfreezes the top k stages (one more each phase) with small, discriminative learning rates.
Every epoch is validated and checkpointed atomically; each phase stops early when validation stops
improving; the best epoch over all phases is restored at the end, so unfreezing can never leave a
result worse (on validation) than the head alone. Randomness is a function of (seed, phase, epoch),
so a killed run resumed from its last checkpoint ends exactly where a straight run would.

The loop keeps model, data and bookkeeping apart (``_Phase`` steps a model over batches), so a
distributed wrapper can take over the model and the sampler without rewriting it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.atomic import atomic_write_bytes
from zoo.backbone import Backbone
from zoo.batches import derive_seed, global_batches, make_loader
from zoo.distributed import all_reduce_sum, gather_rows, shard, world
from zoo.errors import ZooError
from zoo.frozen.features import cached_embeddings
from zoo.frozen.choice import LazyPass, frozen_pass
from zoo.frozen.passes import FrozenPass
from zoo.threads import thread_budget, torch_threads
from zoo.train.checkpoints import Checkpoints
from zoo.train.config import FinetuneConfig
from zoo.train.heads import make_head
from zoo.classweights import class_weights

__all__ = ["Classifier", "Trainer", "Diverged", "schedule"]

_CHECKPOINT_VERSION = 1


class Diverged(Exception):
    """The loss became NaN or infinite."""


class Classifier(nn.Module):
    """Backbone + new head: images or tokens in, class logits out."""

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, *inputs: torch.Tensor, **named: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(*inputs, **named))


def _freeze_batchnorm(module: nn.Module) -> None:
    """BatchNorm keeps its pretrained statistics: a few dozen images per batch would ruin them."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@dataclass
class Score:
    """Validation result of one epoch; better = lower validation loss.

    Loss, not accuracy: with a few labels per class the validation set is tiny and its accuracy
    moves in coarse steps, while the loss ranks epochs smoothly. On digits with 10 labels per class
    (6 seeds) choosing by loss gave 0.832 mean / 0.812 worst test accuracy against 0.816 / 0.768 when
    choosing by accuracy first (measured in bench/finetune_digits.py)."""

    acc: float
    loss: float

    def beats(self, other: Score | None) -> bool:
        return other is None or self.loss < other.loss - 1e-6


class Trainer:
    """Runs the recipe for one run folder; :func:`zoo.finetune` is the public entry point."""

    def __init__(self, config: FinetuneConfig, run_dir: Path, splits: Any, backbone: Backbone,
                 fetched: Any, *, device: torch.device, log: Callable[[str], None] = print,
                 progress: bool = True) -> None:
        self.config = config
        self.dir = run_dir
        self.splits = splits
        self.device = device
        self.log = log
        self.progress = progress and sys.stderr.isatty()
        self.fetched = fetched
        self.classes = list(splits.train.classes)
        torch.manual_seed(config.seed)
        head = make_head(config.head, backbone.feature_dim, len(self.classes), hidden=config.hidden,
                         dropout=config.dropout, normalised=config.validation == "cv")
        self.model = Classifier(backbone, head).to(device)
        self.backbone = backbone
        self.pretrained = {k: v.detach().clone() for k, v in backbone.body.state_dict().items()}
        self.adapted = False  # the whole encoder was trained before the head (--recipe contrastive)
        self.stages = backbone.stages()
        self.checkpoints = Checkpoints(run_dir / "checkpoints")
        self.metrics_path = run_dir / "metrics.jsonl"
        self.features: dict[str, torch.Tensor] = {}
        self.feature_records: dict[str, Any] = {}
        counts = list(splits.train.counts().values())
        self.class_weights = class_weights(counts, config.class_weight)
        weight = torch.tensor(self.class_weights, dtype=torch.float32, device=device) if self.class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
        # Unfrozen phases sum a batch's losses and divide by the whole batch's weight: under
        # torch.distributed each rank holds part of the batch, and DDP's average of the ranks'
        # gradients is then the gradient of the one-process batch mean, uneven parts included.
        self.loss_sum = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing, reduction="sum")
        self.world = world()
        self._ddp: tuple[tuple[int, ...], nn.Module] | None = None
        self.val_loss_fn = nn.CrossEntropyLoss(weight=weight.cpu() if weight is not None else None)
        if self.class_weights:
            log(f"balanced class weights in the loss (training classes of {min(c for c in counts if c)} to "
                f"{max(counts)} examples; --class-weight none to turn off)")
        images = backbone.card.modality == "image"
        self.channels_last = images if config.channels_last == "auto" else bool(config.channels_last)
        self.budget = thread_budget(config.workers, decoding=images)
        # The stage-1 pass over the pretrained backbone: built on the first cache miss, before any
        # training step, and checked on a few training and validation items.
        items = [e.item for e in splits.train.examples] + [e.item for e in splits.val.examples]
        self.frozen = LazyPass(backbone, fetched, engine=config.engine, device=device, workers=config.workers,
                               check=items, channels_last=self.channels_last, log=log)

    # ----------------------------------------------------------------- the frozen pass

    def _unfrozen_pass(self) -> FrozenPass:
        """Inference through the backbone as it is being trained: PyTorch, on the run's threads."""
        return frozen_pass(self.backbone, None, engine="torch", device=self.device, workers=self.config.workers,
                           channels_last=self.channels_last)

    # ----------------------------------------------------------------- phases

    def n_phases(self) -> int:
        unfreeze = self.config.unfreeze
        top = len(self.stages) if unfreeze == "all" else min(int(unfreeze), len(self.stages))
        return 1 + top

    def unfrozen(self, phase: int) -> list[tuple[str, list[nn.Parameter]]]:
        """The stages that learn in a phase, output side first."""
        return list(reversed(self.stages[len(self.stages) - phase:])) if phase > 0 else []

    def optimizer(self, phase: int) -> torch.optim.Optimizer:
        c = self.config
        self.backbone.freeze()
        if phase == 0:
            return torch.optim.AdamW(self.model.head.parameters(), lr=c.head_lr, weight_decay=c.weight_decay)
        groups = [{"params": list(self.model.head.parameters()), "lr": c.backbone_lr * 10, "name": "head"}]
        for depth, (name, params) in enumerate(self.unfrozen(phase)):
            for p in params:
                p.requires_grad_(True)
            if params:
                groups.append({"params": params, "lr": c.backbone_lr * c.lr_decay ** depth, "name": name})
        for group in groups:
            group["base_lr"] = group["lr"]  # the peak of the phase's warmup + cosine schedule
        return torch.optim.AdamW(groups, weight_decay=c.weight_decay)

    # ----------------------------------------------------------------- state

    def _trained_body(self, phase: int) -> dict[str, torch.Tensor]:
        names = {id(p) for _, params in self.unfrozen(phase) for p in params}
        return {k: v.detach().cpu().clone() for k, v in self.backbone.body.named_parameters() if id(v) in names}

    def final_body(self, phase: int) -> dict[str, torch.Tensor]:
        """The body's trained parameters for final.pt: every one after contrastive training (the
        checkpoints of the head's epochs leave the adapted encoder out: one copy of it is enough)."""
        if self.adapted:
            return {k: v.detach().cpu().clone() for k, v in self.backbone.body.named_parameters()}
        return self._trained_body(phase)

    def restore_pretrained(self) -> None:
        """The body as pulled, or as adapted before the head (the head is left to the caller)."""
        self.backbone.body.load_state_dict(self.pretrained)

    def adopt_encoder(self) -> None:
        """The body as it is now becomes the one the head's phases start from and restore: the
        encoder adapted by contrastive training. Its embeddings come from PyTorch (the frozen pass
        and the feature cache hold the pulled weights'), computed here for every set."""
        self.pretrained = {k: v.detach().clone() for k, v in self.backbone.body.state_dict().items()}
        self.adapted = True
        for name, dataset in (("train", self.splits.train), ("val", self.splits.val), ("test", self.splits.test)):
            if dataset is None:
                continue
            started = time.perf_counter()
            self.features[name] = self.encode(dataset)
            self.feature_records[name] = {"hit": False, "seconds": time.perf_counter() - started,
                                          "engine": {"engine": "torch", "encoder": "adapted (contrastive)"}}

    def encode(self, dataset: Any) -> torch.Tensor:
        """Embeddings of ``dataset`` by the encoder as it is now (PyTorch, eval mode)."""
        if len(dataset) == 0:
            return torch.zeros(0, self.backbone.feature_dim)
        return self._embed_now([e.item for e in dataset.examples])

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Pretrained body, then the checkpoint's trained stages and head."""
        body = self.backbone.body
        body.load_state_dict(self.pretrained)
        missing = body.load_state_dict(checkpoint["body"], strict=False).unexpected_keys
        if missing:
            raise ZooError(f"checkpoint does not fit the backbone (unexpected {', '.join(missing[:3])}); "
                           f"was the run made with another model?")
        self.model.head.load_state_dict(checkpoint["head"])

    def save(self, epoch: int, phase: int, phase_epoch: int, optimizer: torch.optim.Optimizer,
             loop: dict[str, Any]) -> None:
        self.checkpoints.save(epoch, {
            "version": _CHECKPOINT_VERSION, "epoch": epoch, "phase": phase, "phase_epoch": phase_epoch,
            "head": {k: v.detach().cpu() for k, v in self.model.head.state_dict().items()},
            "body": self._trained_body(phase), "optimizer": optimizer.state_dict(), "loop": loop,
        })

    # ----------------------------------------------------------------- data

    def embeddings(self, name: str, dataset: Any) -> torch.Tensor:
        if name not in self.features and self.backbone.cut:
            self.features[name] = self._cut_features(name, dataset)
        if name not in self.features:
            bar = _bar(self.progress, len(dataset), f"embedding {name}")
            self.features[name], self.feature_records[name] = cached_embeddings(
                self.backbone.card, self.fetched, dataset, self.frozen, batch_size=max(self.config.batch_size, 64),
                progress=bar, log=self.log)
            if bar is not None:
                bar.close()
            record = self.feature_records[name]
            how = "from the cache" if record["hit"] else f"computed ({record['engine']['engine']})"
            self.log(f"  {name}: {len(dataset)} embeddings {how} in {record['seconds']:.1f}s")
        return self.features[name]

    def _cut_features(self, name: str, dataset: Any) -> torch.Tensor:
        """Stage-1 features of a backbone cut at other layers than the card's: each layer's pooled
        output from the shared per-layer cache (one pass through the uncut network), joined."""
        from zoo.probing.run import cut_features

        x, _, record = cut_features(self.backbone.card, dataset, None, self.backbone.cut, engine=self.config.engine,
                                    say=self.log, device=self.device, workers=self.config.workers)
        self.feature_records[name] = layer_record(record, self.backbone.cut)
        self.log(f"  {name}: {len(dataset)} features at {'+'.join(self.backbone.cut)} "
                 f"{'from the cache' if record['cache'] == 'hit' else 'computed'} in {record['seconds']:.1f}s")
        return torch.from_numpy(x).float()

    @staticmethod
    def _labels(dataset: Any) -> torch.Tensor:
        return torch.tensor([e.label for e in dataset.examples], dtype=torch.long)

    # ----------------------------------------------------------------- epochs

    def _step(self, optimizer: torch.optim.Optimizer, logits: torch.Tensor, labels: torch.Tensor) -> float:
        loss = self.loss_fn(logits.float(), labels)
        if not torch.isfinite(loss):
            raise Diverged()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    def train_epoch(self, phase: int, phase_epoch: int, optimizer: torch.optim.Optimizer,
                    data: Any = None, salt: int = 0) -> tuple[float, float]:
        """One epoch of ``phase`` on the training set (or ``data``: a fold's part, whose
        randomness ``salt`` keeps apart from the run's)."""
        data = self.splits.train if data is None else data
        seed = derive_seed(self.config.seed, phase, phase_epoch, *((salt,) if salt else ()))
        torch.manual_seed(seed)
        total_loss, correct, count = 0.0, 0, 0
        if phase == 0:
            x, y = self.embeddings("train", self.splits.train), self._labels(self.splits.train)  # never a fold
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
            self.model.head.train()
            for start in range(0, len(x), self.config.batch_size):
                index = order[start:start + self.config.batch_size]
                logits = self.model.head(x[index].to(self.device))
                labels = y[index].to(self.device)
                total_loss += self._step(optimizer, logits, labels) * len(index)
                correct += int((logits.argmax(1) == labels).sum())
                count += len(index)
            return total_loss / count, correct / count
        self.model.train()
        _freeze_batchnorm(self.model.backbone)
        items = [e.item for e in data.examples]
        labels_all = self._labels(data)
        size = self.config.batch_size
        batches = global_batches(len(items), seed, True, size)
        loader = make_loader(self.backbone, items, labels_all.tolist(), batch_size=size, seed=seed, shuffle=True,
                             augmenting=self.config.augment, workers=self.budget.workers,
                             rank=(self.world.rank, self.world.size))
        model = self._wrapped()
        bar = _bar(self.progress, len(items), f"phase {phase} epoch {phase_epoch}")
        steps = len(batches)
        with torch_threads(self.budget.threads), _joined(model):
            for step, (inputs, labels) in enumerate(loader):
                schedule(optimizer, (phase_epoch * steps + step) / (self.config.unfreeze_epochs * steps),
                         self.config.warmup)
                labels = labels.to(self.device)
                whole = labels_all[batches[step]]
                with _autocast(self.device):
                    logits = self._forward(inputs, model)
                loss = self.loss_sum(logits.float(), labels) / self._batch_weight(whole) * self.world.size
                self._step_on(optimizer, loss)
                total_loss += loss.item() / self.world.size * len(whole)
                correct += int((logits.argmax(1) == labels).sum())
                count += len(labels)
                if bar is not None:
                    bar.update(len(labels) * self.world.size)
        if bar is not None:
            bar.close()
        total_loss, correct, count = all_reduce_sum((total_loss, correct, count))
        return total_loss / count, correct / count

    def _batch_weight(self, labels: torch.Tensor) -> float:
        """What CrossEntropyLoss's mean divides a batch's summed loss by: its count, or with class
        weights the sum of its examples' weights."""
        if self.loss_sum.weight is None:
            return float(len(labels))
        return float(self.loss_sum.weight.cpu()[labels].sum())

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
        """The classifier for a training step: itself, or under torch.distributed wrapped in
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
        inputs = inputs.to(self.device, non_blocking=True)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return model(inputs)

    @torch.no_grad()
    def logits(self, name: str, dataset: Any, phase: int) -> torch.Tensor:
        """Class logits for a whole set: from cached embeddings while the backbone is untouched."""
        self.model.eval()
        if phase == 0:
            return self.model.head(self.embeddings(name, dataset).to(self.device)).float().cpu()
        embedded = self._embed_now([e.item for e in dataset.examples])
        return self.model.head(embedded.to(self.device)).float().cpu()

    def _embed_now(self, items: list[Any]) -> torch.Tensor:
        """Embeddings by the backbone as it is now (PyTorch, eval mode), each rank embedding its
        share of the items and every rank getting all of them, in order."""
        part = shard(len(items), self.world)
        mine = items[part.start:part.stop]
        if mine:
            embedded = self._unfrozen_pass().embed(mine, batch_size=max(self.config.batch_size, 64)).float().cpu()
        else:
            embedded = torch.zeros(0, self.backbone.feature_dim)
        return gather_rows(embedded, len(items))

    def validate(self, phase: int) -> Score:
        logits = self.logits("val", self.splits.val, phase)
        labels = self._labels(self.splits.val)
        loss = float(self.val_loss_fn(logits, labels))
        return Score(acc=float((logits.argmax(1) == labels).float().mean()), loss=loss)

    # ----------------------------------------------------------------- the loop

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Run (or continue) every phase; returns the loop state with the best epoch."""
        loop: dict[str, Any] = {"best": None, "phase_done": -1, "stopped": None, "bad": 0}
        start_phase, start_epoch, epoch, optimizer_state = 0, 0, 0, None
        if resume:
            latest = self.checkpoints.latest()
            if latest is not None:
                epoch, checkpoint = latest
                self.restore(checkpoint)
                loop = checkpoint["loop"]
                start_phase, start_epoch = checkpoint["phase"], checkpoint["phase_epoch"] + 1
                optimizer_state = checkpoint.get("optimizer")
                _truncate_jsonl(self.metrics_path, epoch)
                self.log(f"resuming after epoch {epoch} (phase {start_phase}, epoch {start_epoch - 1})")
        else:
            self.metrics_path.unlink(missing_ok=True)
        if start_phase == 0:  # computed (or read from the cache) before any seeded epoch
            self.embeddings("train", self.splits.train)
            self.embeddings("val", self.splits.val)
        for phase in range(start_phase, self.n_phases()):
            if loop["stopped"] is not None or phase <= loop["phase_done"]:
                continue
            limit = self.config.head_epochs if phase == 0 else self.config.unfreeze_epochs
            patience = self.config.patience if phase == 0 else self.config.unfreeze_patience
            if phase > 0 and optimizer_state is None:
                self._restore_best(loop)  # each phase starts from the best model so far
            names = [n for n, _ in self.unfrozen(phase)]
            self.log(f"phase {phase}: " + ("head on cached embeddings" if phase == 0
                                           else f"unfreezing {', '.join(names)}"))
            optimizer = self.optimizer(phase)
            if optimizer_state is not None:
                optimizer.load_state_dict(optimizer_state)
                optimizer_state = None
            first = start_epoch if phase == start_phase else 0
            for phase_epoch in range(first, limit):
                if first > 0 and phase_epoch == first and loop["bad"] >= patience:
                    break
                started = time.perf_counter()
                try:
                    train_loss, train_acc = self.train_epoch(phase, phase_epoch, optimizer)
                except Diverged:
                    loop["stopped"] = f"loss became NaN or infinite in phase {phase}, epoch {phase_epoch}"
                    self.log(f"stopping: {loop['stopped']}; keeping the best checkpoint")
                    break
                score = self.validate(phase)
                epoch += 1
                best = loop["best"]
                is_best = score.beats(Score(**best["score"]) if best else None)
                if is_best:
                    loop["best"] = {"epoch": epoch, "phase": phase, "score": score.__dict__}
                    loop["bad"] = 0
                else:
                    loop["bad"] += 1
                row = {"epoch": epoch, "stage": "head" if phase == 0 else f"unfreeze-{phase}", "phase": phase,
                       "phase_epoch": phase_epoch, "train_loss": train_loss, "train_acc": train_acc,
                       "val_loss": score.loss, "val_acc": score.acc, "seconds": time.perf_counter() - started,
                       "best": is_best}
                # The row goes first: a run killed before the checkpoint lands resumes from the one
                # before, and the resume drops rows past it, so the history never loses an epoch.
                _append_jsonl(self.metrics_path, row)
                self.save(epoch, phase, phase_epoch, optimizer, loop)
                if is_best:
                    self.checkpoints.mark_best(epoch, {"phase": phase, **score.__dict__})
                last = loop["bad"] >= patience or phase_epoch == limit - 1
                if phase > 0 or last or phase_epoch % 10 == 0:
                    self.log(_epoch_line(row))  # the head's epochs are many and take milliseconds
                if loop["bad"] >= patience:
                    break
            loop["phase_done"] = phase
            loop["bad"] = 0
            if loop["best"]:
                b = loop["best"]
                self.log(f"  best so far: epoch {b['epoch']} (phase {b['phase']}), val acc {b['score']['acc']:.3f} "
                         f"loss {b['score']['loss']:.3f}")
            if loop["stopped"] is not None:
                break
        if loop["best"] is None:
            raise ZooError(f"training stopped before any epoch completed ({loop['stopped']}); "
                           f"lower the learning rate (--lr) and run again")
        self._restore_best(loop)
        return loop

    def _restore_best(self, loop: dict[str, Any]) -> None:
        if loop.get("best"):
            self.restore(self.checkpoints.load(loop["best"]["epoch"]))


def layer_record(record: dict[str, Any], layers: Any) -> dict[str, Any]:
    """A :func:`zoo.probing.run.layer_features` record in the shape of the run's feature records."""
    return {"hit": record["cache"] == "hit", "seconds": record["seconds"], "layers": list(layers),
            "engine": {k: v for k, v in record.items() if k not in ("cache", "seconds")}}


def schedule(optimizer: torch.optim.Optimizer, position: float, warmup: float) -> None:
    """Each group's learning rate at ``position`` (0..1) of an unfrozen phase: a linear warmup over
    the first ``warmup`` of it, then a cosine decay towards 0 (the usual schedule for fine-tuning
    pretrained layers: no large step before the new head and the layers agree). A function of the
    position alone, so a resumed phase continues its schedule exactly."""
    if warmup > 0 and position < warmup:
        factor = (position + 1e-3) / warmup
    else:
        factor = 0.5 * (1 + math.cos(math.pi * min(1.0, (position - warmup) / (1 - warmup))))
    for group in optimizer.param_groups:
        group["lr"] = group.get("base_lr", group["lr"]) * min(1.0, factor)


def _joined(model: nn.Module):
    """DDP's join for a rank whose part of the last batch was empty (fewer examples than ranks):
    the others' gradient reductions go on without it. A plain module needs none."""
    from contextlib import nullcontext

    return model.join() if hasattr(model, "join") and world().distributed else nullcontext()


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _bar(enabled: bool, total: int, description: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img", leave=False, file=sys.stderr)


def _epoch_line(row: dict[str, Any]) -> str:
    mark = "  *best" if row["best"] else ""
    if row.get("val_loss") is None:  # a cross-validated run: the folds' estimate for this point
        judged = f"cv loss {row['cv_loss']:.3f} score {row['cv_acc']:.3f}"
    else:
        judged = f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.3f}"
    return (f"  epoch {row['epoch']:>3} ({row['stage']}): train loss {row['train_loss']:.3f} "
            f"acc {row['train_acc']:.3f} | {judged} | {row['seconds']:.1f}s{mark}")


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()


def _truncate_jsonl(path: Path, epoch: int) -> None:
    """Drop rows after ``epoch`` (written after the last complete checkpoint of a killed run)."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and _row_epoch(line) is not None and _row_epoch(line) <= epoch]
    atomic_write_bytes(path, ("\n".join(rows) + "\n").encode() if rows else b"")


def _row_epoch(line: str) -> int | None:
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line of a killed run

