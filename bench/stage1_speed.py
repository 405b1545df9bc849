"""Stage 1 per-epoch cost: the head on cached embeddings vs running the frozen backbone each epoch.

Same data (digits, 10 labels per class: 80 train + 20 validation images), same head, same
optimizer; each "epoch" trains on the train set and validates. Target (issue 4): >= 20x.

    python bench/stage1_speed.py [--epochs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import zoo
from zoo.data import make_splits
from zoo.batches import make_loader
from zoo.frozen import frozen_pass
from zoo.train.heads import make_head

MODEL = "efficientnet_lite0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    epochs = parser.parse_args().epochs
    splits = make_splits("digits", modality="image", per_class=10, seed=0)
    backbone = zoo.load(MODEL).freeze()
    train_items = [e.item for e in splits.train.examples]
    train_labels = [e.label for e in splits.train.examples]
    val_items = [e.item for e in splits.val.examples]
    val_labels = torch.tensor([e.label for e in splits.val.examples])
    head = make_head("linear", backbone.feature_dim, 10)
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3)

    def step(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        head.train()
        loss = torch.nn.functional.cross_entropy(head(embeddings), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    started = time.perf_counter()
    eager = frozen_pass(backbone, engine="torch")  # this bench compares epochs, not engines
    cached_train = eager.embed(train_items)
    cached_val = eager.embed(val_items)
    caching = time.perf_counter() - started
    labels = torch.tensor(train_labels)

    def cached_epoch() -> float:
        t = time.perf_counter()
        order = torch.randperm(len(cached_train))
        for i in range(0, len(order), 32):
            step(cached_train[order[i:i + 32]], labels[order[i:i + 32]])
        with torch.no_grad():
            head.eval()
            head(cached_val)
        return time.perf_counter() - t

    def backbone_epoch() -> float:
        t = time.perf_counter()
        backbone.eval()
        for x, y in make_loader(backbone, train_items, train_labels, batch_size=32, seed=0, shuffle=True):
            with torch.no_grad():
                embeddings = backbone(x)
            step(embeddings, y)
        with torch.no_grad():
            head.eval()
            head(eager.embed(val_items))
        return time.perf_counter() - t

    cached, direct = [], []
    for _ in range(epochs):  # interleaved, so machine noise hits both alike
        cached.append(cached_epoch())
        direct.append(backbone_epoch())
    c, d = statistics.median(cached), statistics.median(direct)
    print(f"one-off embedding of train+val: {caching:.2f}s")
    print(f"epoch on cached embeddings:      {c * 1000:.2f} ms (median of {epochs})")
    print(f"epoch running the frozen backbone: {d * 1000:.0f} ms")
    print(f"speed-up per epoch: {d / c:.0f}x (target >= 20x)")


if __name__ == "__main__":
    main()
