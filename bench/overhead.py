"""Framework overhead: one unfrozen epoch of zoo's trainer vs a minimal hand-written PyTorch loop.

Same model (efficientnet_lite0 + linear head, top 2 stages unfrozen, BatchNorm frozen), same
images (digits, 10 labels per class), same preprocessing, batch size, optimizer and loader
processes; augmentation off in both. Epochs are interleaved so noise hits both alike.
Target (issue 4): zoo <= 1.15x the hand-written loop.

    python bench/overhead.py [--epochs 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from zoo.batches import default_workers
from zoo.preprocess import image_array
from zoo.runs.options import FinetuneOptions
from zoo.train.setup import prepare
from zoo.train.stages import make_learner
from zoo.train.stepping import freeze_batchnorm

MODEL = "efficientnet_lite0"
PHASE = 2


class Plain(torch.utils.data.Dataset):
    def __init__(self, items, labels, spec):  # noqa: ANN001
        self.items, self.labels, self.spec = items, labels, spec

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return torch.from_numpy(image_array(self.items[i], self.spec)), self.labels[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    epochs = parser.parse_args().epochs
    # the run's own setup (data, plan, task, device) and learner, as zoo.finetune builds them
    options = FinetuneOptions.from_flat(MODEL, "digits", per_class=10, unfreeze=PHASE, augment="none",
                                        validation="split", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        setup = prepare(options, Path(tmp), False, lambda _: None, False)
        trainer = make_learner(setup, None, normalised=False)
        optimizer = trainer.optimizer(PHASE)
        model = trainer.model
        items = [e.item for e in setup.sets["train"].examples]
        labels = [int(v) for v in setup.targets["train"].values]
        loader = torch.utils.data.DataLoader(Plain(items, labels, setup.card.input), batch_size=setup.options.engine.batch_size,
                                             shuffle=True, num_workers=default_workers())
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=setup.options.head.label_smoothing)

        def hand_written() -> float:
            t = time.perf_counter()
            model.train()
            freeze_batchnorm(model.backbone)
            for x, y in loader:
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return time.perf_counter() - t

        def zoo_epoch(i: int) -> float:
            t = time.perf_counter()
            trainer.train_epoch(PHASE, i, optimizer)
            return time.perf_counter() - t

        hand_written()  # warm-up: first-epoch allocations, worker start-up paths
        zoo_epoch(0)
        plain, ours = [], []
        for i in range(epochs):
            plain.append(hand_written())
            ours.append(zoo_epoch(i + 1))
    p, z = statistics.median(plain), statistics.median(ours)
    print(f"hand-written loop: {p:.2f}s per epoch (median of {epochs})")
    print(f"zoo trainer:       {z:.2f}s per epoch")
    print(f"ratio: {z / p:.3f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
