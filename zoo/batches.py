"""From examples to batches: preprocessing (and light augmentation) in DataLoader workers.

Randomness is a pure function of (seed, epoch, index): the sampler hands each worker the seed for
each example, so shuffling and augmentation are identical whether a run goes straight through or
is killed and resumed, and whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, default_collate

from zoo.backbone import Backbone
from zoo.preprocess import image_array, open_image

__all__ = ["derive_seed", "make_loader", "global_batches", "encode_items", "default_workers", "augment", "augmentation"]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes (no Python hash randomisation)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def default_workers() -> int:
    """Loader processes by default: the thread budget's share for decoding (:mod:`zoo.threads`)."""
    from zoo.threads import thread_budget

    return thread_budget().workers


class _SeededOrder(Sampler):
    """Yields ``(index, per-example seed)``, shuffled by the epoch's seed when asked to."""

    def __init__(self, size: int, seed: int | None, shuffle: bool) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.arange(self.size)
        if self.shuffle:
            np.random.default_rng(self.seed).shuffle(order)
        for index in order.tolist():
            yield index, (derive_seed(self.seed, index) if self.seed is not None else -1)

    def __len__(self) -> int:
        return self.size


class _RankBatches(Sampler):
    """This rank's part of every global batch of a :class:`_SeededOrder` (torch.distributed): the
    epoch's order and its global batches are the single process's, and rank ``r`` of ``n`` takes
    the ``r``-th contiguous slice of each (:func:`zoo.distributed.shard`), so the ranks together
    see exactly the batches one process would, each example with its own seed.

    A DistributedSampler would instead deal the examples out before batching, which changes the
    batches with the world size; here the data order is the run's, whatever the world size."""

    def __init__(self, order: _SeededOrder, batch_size: int, rank: int, size: int) -> None:
        self.order, self.batch_size, self.rank, self.size = order, batch_size, rank, size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        from zoo.distributed import World, shard

        keys = list(self.order)
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start:start + self.batch_size]
            part = shard(len(batch), World(rank=self.rank, size=self.size))
            if len(part):  # a batch smaller than the world: this rank sits it out (DDP's join)
                yield batch[part.start:part.stop]

    def __len__(self) -> int:
        return sum(1 for _ in self)


def global_batches(size: int, seed: int | None, shuffle: bool, batch_size: int) -> list[list[int]]:
    """The example indices of every batch of an epoch, as :func:`make_loader` orders them (what a
    rank needs to normalise its part of a batch's loss by the whole batch's)."""
    keys = [index for index, _ in _SeededOrder(size, seed, shuffle)]
    return [keys[start:start + batch_size] for start in range(0, size, batch_size)]


def augmentation(policy: str, size: tuple[int, int]) -> Any:
    """The v2 transform of ``policy`` (one of ``zoo.train.config.AUGMENTATIONS``) for PIL images
    of ``size`` (width, height); None for none."""
    from torchvision.transforms import v2

    if policy == "none":
        return None
    if policy == "light":
        return v2.Compose([v2.RandomResizedCrop((size[1], size[0]), scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3),
                                                antialias=True),
                           v2.ColorJitter(brightness=0.15, contrast=0.15)])
    if policy == "trivialaugment":
        return v2.TrivialAugmentWide()
    if policy == "randaugment":
        return v2.RandAugment()
    raise ValueError(f"unknown augmentation {policy!r}")


def augment(image, seed: int, policy: str = "light"):  # noqa: ANN001 - a PIL image
    """``image`` through the ``policy`` transform, its randomness drawn from ``seed`` alone:
    torch's generator is forked, so neither the caller's random state nor another example's
    draw changes it (a resumed run augments every example as a straight run did)."""
    transform = augmentation(policy, image.size)
    if transform is None:
        return image
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(image)


class _Images(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[Any], labels: Sequence[int], spec, augmenting: str | bool) -> None:  # noqa: ANN001
        augmenting = ("light" if augmenting else "none") if isinstance(augmenting, bool) else augmenting
        self.items, self.labels, self.spec, self.augmenting = items, labels, spec, augmenting

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        image = open_image(self.items[index])
        if self.augmenting != "none" and seed >= 0:
            image = augment(image.convert("RGB"), seed, self.augmenting)
        return torch.from_numpy(image_array(image, self.spec)), self.labels[index]


class _Converted(_Images):
    """Items of another modality through the card's front end (``zoo.frontend``), which owns its
    augmentation (SpecAugment for sounds), seeded per example like the images'."""

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        from zoo.frontend import array

        index, seed = key
        augment = (self.augmenting, seed) if self.augmenting != "none" and seed >= 0 else None
        return torch.from_numpy(array(self.items[index], self.spec, augment=augment)), self.labels[index]


class _Texts(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[str], labels: Sequence[int]) -> None:
        self.items, self.labels = items, labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[str, int]:
        return self.items[key[0]], self.labels[key[0]]


class _Tokenize:
    """Collate texts into padded token tensors (picklable, for worker processes)."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, batch: list[tuple[str, int]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        texts, labels = zip(*batch)
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        inputs = {k: encoded[k] for k in ("input_ids", "attention_mask")}
        return inputs, torch.tensor(labels, dtype=torch.long)


class _Samples(torch.utils.data.Dataset):
    """A dense task's examples (``zoo.tasks.contract.DenseTask.sampler``): the sampler makes the
    input and its per-image target together (a box or a mask moves with its image), seeded per
    example like the images' augmentation."""

    def __init__(self, items: Sequence[Any], values: Sequence[Any], sample: Any, augmenting: str | bool) -> None:
        augmenting = ("light" if augmenting else "none") if isinstance(augmenting, bool) else augmenting
        self.items, self.values, self.sample, self.augmenting = items, values, sample, augmenting

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, Any]:
        index, seed = key
        return self.sample(self.items[index], self.values[index], seed, self.augmenting if seed >= 0 else "none")


def _dataset(backbone: Backbone, items: Sequence[Any], labels: Sequence[int], augmenting: str | bool
             ) -> tuple[torch.utils.data.Dataset, Any]:
    """The per-example dataset and the collate function of a backbone's inputs."""
    card = backbone.card
    if card.input.front_end is not None:
        return _Converted(items, labels, card.input, augmenting), default_collate
    if card.modality == "text":
        return _Texts(items, labels), _Tokenize(backbone.tokenizer, card.input.max_length or 512)
    return _Images(items, labels, card.input, augmenting), default_collate


def make_loader(
    backbone: Backbone,
    items: Sequence[Any],
    labels: Sequence[int],
    *,
    batch_size: int,
    seed: int | None = None,
    shuffle: bool = False,
    augmenting: str | bool = False,
    workers: int | None = None,
    rank: tuple[int, int] | None = None,
    sample: Any = None,
    collate: Any = None,
) -> DataLoader:
    """Batches of ``(inputs, labels)``; inputs are an NCHW tensor or a dict of token tensors.
    ``rank=(r, n)``: rank ``r`` of ``n``'s part of each batch (:class:`_RankBatches`).
    ``sample`` and ``collate``: a dense task's (:class:`_Samples`), whose ``labels`` are each
    example's targets."""
    workers = default_workers() if workers is None else workers
    sampler = _SeededOrder(len(items), seed, shuffle)
    if sample is not None:
        dataset = _Samples(items, labels, sample, augmenting)
    else:
        dataset, collate = _dataset(backbone, items, labels, augmenting)
    if backbone.card.modality == "text":
        workers = 0  # fast tokenizers are already parallel; forking them only adds overhead
    pin = torch.cuda.is_available()
    if rank is not None and rank[1] > 1:
        return DataLoader(dataset, batch_sampler=_RankBatches(sampler, batch_size, *rank), num_workers=workers,
                          collate_fn=collate, persistent_workers=False, pin_memory=pin)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, persistent_workers=False, pin_memory=pin)


def encode_items(backbone: Backbone, items: Sequence[Any]) -> Any:
    """``items`` as one batch of inputs, made exactly as :func:`make_loader` makes them (without
    augmentation), in the calling thread: for a compute thread that decodes its own batch."""
    dataset, collate = _dataset(backbone, items, [0] * len(items), augmenting=False)
    return collate([dataset[(index, -1)] for index in range(len(items))])[0]
