"""A dense example as the network takes it: the picture and its boxes (detection) or its mask
(segmentation) transformed together.

Augmentation is torchvision.transforms.v2 on a ``tv_tensors.BoundingBoxes`` or ``tv_tensors.Mask``
beside the image, so every geometric change moves the boxes or the mask with the pixels (a mask
nearest-neighbour), and ``SanitizeBoundingBoxes`` drops the boxes a crop left degenerate. Then the picture is squashed to the network's size by zoo's own
preprocessing (:func:`zoo.preprocess.image_array`: the pixels the export and the torch-free
runtime see) and the boxes are scaled by the same factors, the mask resized nearest-neighbour. Randomness is the example's seed
alone (torch's generator forked), as for every zoo augmentation: a resumed run augments alike.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BoxSampler", "MaskSampler", "InstanceSampler", "box_transform", "mask_transform", "trainable"]


def _steps(policy: str, size: tuple[int, int]) -> list[Any] | None:
    """The v2 steps of ``policy`` for a PIL picture of ``size`` (width, height), moving whatever
    tv_tensors go with it (boxes, masks); None for ``none``. ``light``: a horizontal flip, a
    random crop of 60-100% of the area, a mild colour jitter; ``trivialaugment`` and
    ``randaugment``: torchvision's policies, which move masks but refuse boxes (the box tasks
    refuse them in their options check)."""
    from torchvision.transforms import v2

    if policy == "none":
        return None
    if policy == "light":
        return [v2.RandomHorizontalFlip(0.5),
                v2.RandomResizedCrop((size[1], size[0]), scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
                v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)]
    if policy == "trivialaugment":
        return [v2.TrivialAugmentWide()]
    if policy == "randaugment":
        return [v2.RandAugment()]
    raise ValueError(f"unknown augmentation {policy!r}")


def box_transform(policy: str, size: tuple[int, int]) -> Any:
    """The v2 transform of ``policy`` (:func:`_steps`) for a picture with its boxes (a dict with
    ``boxes`` and ``labels``), boxes a crop left degenerate dropped; None for ``none``."""
    from torchvision.transforms import v2

    steps = _steps(policy, size)
    return None if steps is None else v2.Compose([*steps, v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=2)])


def mask_transform(policy: str, size: tuple[int, int]) -> Any:
    """The v2 transform of ``policy`` (:func:`_steps`) for a picture with its ``tv_tensors.Mask``
    (nearest-neighbour, never blended); None for ``none``."""
    from torchvision.transforms import v2

    steps = _steps(policy, size)
    return None if steps is None else v2.Compose(steps)


def trainable(value: Any) -> tuple[Any, Any]:
    """The boxes and labels a network learns from (crowd / difficult boxes are only scored as
    'ignore', never trained on): float32 ``(k, 4)`` and int64 ``(k,)``."""
    import numpy as np

    if value is None:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    keep = ~np.asarray(value["crowd"], dtype=bool)
    return (np.asarray(value["boxes"], np.float32).reshape(-1, 4)[keep],
            np.asarray(value["labels"], np.int64)[keep])


def moved(image: Any, boxes: Any, labels: Any, masks: Any, seed: int, policy: str) -> tuple[Any, Any, Any, Any]:
    """The picture with its boxes, labels and (when not None) each object's mask through
    ``policy``'s transform (:func:`box_transform`) under the example's ``seed``, an object a crop
    left degenerate dropped with its mask; all unchanged for ``none`` or a seed below 0 (no
    augmentation)."""
    transform = box_transform(policy, image.size) if seed >= 0 else None
    if transform is None:
        return image, boxes, labels, masks
    import numpy as np
    import torch
    from torchvision import tv_tensors

    target = {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY",
                                                canvas_size=(image.size[1], image.size[0])),
              "labels": torch.from_numpy(labels)}
    if masks is not None:
        target["masks"] = tv_tensors.Mask(torch.from_numpy(masks))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image, target = transform(image, target)
    return (image, target["boxes"].numpy().astype(np.float32), target["labels"].numpy(),
            None if masks is None else target["masks"].numpy().astype(np.uint8))


def box_scale(size: tuple[int, int], spec: Any) -> Any:
    """The factors (x, y, x, y) taking boxes on a picture of ``size`` (width, height) to the
    network's squashed picture of ``spec``."""
    import numpy as np

    side_h, side_w = spec.size
    return np.asarray([side_w / size[0], side_h / size[1]] * 2, dtype=np.float32)


class BoxSampler:
    """``(item, value, seed, policy) -> (CHW tensor, {"boxes", "labels"})`` for images read at
    ``spec`` (a square, squashed): see the module. Picklable, for loader processes."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def __call__(self, item: Any, value: Any, seed: int, policy: str) -> tuple[Any, dict[str, Any]]:
        import numpy as np
        import torch

        from zoo import image_array, open_image

        boxes, labels = trainable(value)
        image, boxes, labels, _ = moved(open_image(item), boxes, labels, None, seed, policy)
        return torch.from_numpy(image_array(image, self.spec)), {
            "boxes": torch.from_numpy(boxes * box_scale(image.size, self.spec)).reshape(-1, 4),
            "labels": torch.from_numpy(np.asarray(labels, np.int64))}

    @staticmethod
    def collate(batch: list[tuple[Any, dict[str, Any]]]) -> tuple[Any, list[dict[str, Any]]]:
        import torch

        images, targets = zip(*batch)
        return torch.stack(images), list(targets)


class MaskSampler:
    """``(item, value, seed, policy) -> (CHW tensor, {"mask"})`` for images read at ``spec``
    (squashed): the class-index mask (:func:`zoo_dense.masks.decode`, all ignore without a value)
    moved with the picture, then scaled to the network's size as the runtime scales masks back
    (:func:`zoo.postprocess.mask_in_picture`), uint8.
    Picklable, for loader processes."""

    def __init__(self, spec: Any, classes: int) -> None:
        self.spec, self.classes = spec, classes

    def __call__(self, item: Any, value: Any, seed: int, policy: str) -> tuple[Any, dict[str, Any]]:
        import numpy as np
        import torch

        from zoo import image_array, open_image
        from zoo import mask_in_picture
        from zoo_dense.masks import IGNORE, decode

        image = open_image(item)
        mask = (decode(value, self.classes) if value is not None
                else np.full((image.size[1], image.size[0]), IGNORE, np.uint8))
        transform = mask_transform(policy, image.size) if seed >= 0 else None
        if transform is not None:
            from torchvision import tv_tensors

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image, moved = transform(image, tv_tensors.Mask(torch.from_numpy(mask)))
            mask = moved.numpy().astype(np.uint8)
        height, width = self.spec.size
        resized = np.ascontiguousarray(mask_in_picture(mask, (width, height)))
        return torch.from_numpy(image_array(image, self.spec)), {"mask": torch.from_numpy(resized)}

    @staticmethod
    def collate(batch: list[tuple[Any, dict[str, Any]]]) -> tuple[Any, list[dict[str, Any]]]:
        return BoxSampler.collate(batch)


class InstanceSampler:
    """``(item, value, seed, policy) -> (CHW tensor, {"boxes", "labels", "masks"})`` for images
    read at ``spec`` (a square, squashed): each object's mask decoded from its COCO polygons or
    RLE (:func:`zoo_dense.masks.painted`; crowds are not trained on), moved with the picture and its
    box (``tv_tensors.Mask``; an object a crop leaves degenerate is dropped with its mask), then
    boxes scaled and masks resized nearest-neighbour to the network's square. Picklable."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def __call__(self, item: Any, value: Any, seed: int, policy: str) -> tuple[Any, dict[str, Any]]:
        import numpy as np
        import torch

        from zoo import image_array, mask_in_picture, open_image
        from zoo_dense.masks import painted

        image = open_image(item)
        width, height = image.size
        boxes, labels = trainable(value)
        shapes = [s for s, crowd in zip(value["segmentations"], value["crowd"]) if not crowd] if value else []
        masks = (np.stack([painted(s, height, width) for s in shapes]).astype(np.uint8) if shapes
                 else np.zeros((0, height, width), np.uint8))
        image, boxes, labels, masks = moved(image, boxes, labels, masks, seed, policy)
        side_h, side_w = self.spec.size
        resized = (np.stack([mask_in_picture(m, (side_w, side_h)) for m in masks]) if len(masks)
                   else np.zeros((0, side_h, side_w), np.uint8))
        return torch.from_numpy(image_array(image, self.spec)), {
            "boxes": torch.from_numpy(boxes * box_scale(image.size, self.spec)).reshape(-1, 4),
            "labels": torch.from_numpy(np.asarray(labels, np.int64)),
            "masks": torch.from_numpy(np.ascontiguousarray(resized))}

    @staticmethod
    def collate(batch: list[tuple[Any, dict[str, Any]]]) -> tuple[Any, list[dict[str, Any]]]:
        return BoxSampler.collate(batch)
