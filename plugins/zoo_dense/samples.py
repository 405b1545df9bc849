"""A detection example as the network takes it: the picture and its boxes transformed together.

Augmentation is torchvision.transforms.v2 on a ``tv_tensors.BoundingBoxes`` beside the image, so
every geometric change moves the boxes with the pixels, and ``SanitizeBoundingBoxes`` drops the
ones a crop left degenerate. Then the picture is squashed to the network's size by zoo's own
preprocessing (:func:`zoo.preprocess.image_array`: the pixels the export and the torch-free
runtime see) and the boxes are scaled by the same factors. Randomness is the example's seed
alone (torch's generator forked), as for every zoo augmentation: a resumed run augments alike.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BoxSampler", "box_transform", "trainable"]


def box_transform(policy: str, size: tuple[int, int]) -> Any:
    """The v2 transform of ``policy`` for a PIL picture of ``size`` (width, height) with its boxes
    (a dict with ``boxes`` and ``labels``); None for ``none``. ``light``: a horizontal flip, a
    random crop of 60-100% of the area (boxes cut with it), a mild colour jitter;
    ``trivialaugment`` and ``randaugment``: torchvision's policies, which move boxes too."""
    from torchvision.transforms import v2

    if policy == "none":
        return None
    if policy == "light":
        steps = [v2.RandomHorizontalFlip(0.5),
                 v2.RandomResizedCrop((size[1], size[0]), scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
                 v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)]
    elif policy == "trivialaugment":
        steps = [v2.TrivialAugmentWide()]
    elif policy == "randaugment":
        steps = [v2.RandAugment()]
    else:
        raise ValueError(f"unknown augmentation {policy!r}")
    return v2.Compose([*steps, v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=2)])


def trainable(value: Any) -> tuple[Any, Any]:
    """The boxes and labels a network learns from (crowd / difficult boxes are only scored as
    'ignore', never trained on): float32 ``(k, 4)`` and int64 ``(k,)``."""
    import numpy as np

    if value is None:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    keep = ~np.asarray(value["crowd"], dtype=bool)
    return (np.asarray(value["boxes"], np.float32).reshape(-1, 4)[keep],
            np.asarray(value["labels"], np.int64)[keep])


class BoxSampler:
    """``(item, value, seed, policy) -> (CHW tensor, {"boxes", "labels"})`` for images read at
    ``spec`` (a square, squashed): see the module. Picklable, for loader processes."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def __call__(self, item: Any, value: Any, seed: int, policy: str) -> tuple[Any, dict[str, Any]]:
        import numpy as np
        import torch

        from zoo import image_array, open_image

        image = open_image(item)
        boxes, labels = trainable(value)
        transform = box_transform(policy, image.size) if seed >= 0 else None
        if transform is not None:
            from torchvision import tv_tensors

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image, target = transform(image, {
                    "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY",
                                                      canvas_size=(image.size[1], image.size[0])),
                    "labels": torch.from_numpy(labels)})
            boxes, labels = target["boxes"].numpy().astype(np.float32), target["labels"].numpy()
        width, height = image.size
        side_h, side_w = self.spec.size
        scale = np.asarray([side_w / width, side_h / height] * 2, dtype=np.float32)
        pixels = torch.from_numpy(image_array(image, self.spec))
        return pixels, {"boxes": torch.from_numpy(boxes * scale).reshape(-1, 4),
                        "labels": torch.from_numpy(np.asarray(labels, np.int64))}

    @staticmethod
    def collate(batch: list[tuple[Any, dict[str, Any]]]) -> tuple[Any, list[dict[str, Any]]]:
        import torch

        images, targets = zip(*batch)
        return torch.stack(images), list(targets)
