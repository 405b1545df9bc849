"""Segmentation data as it comes, and each picture's class-index mask.

Two layouts of one mask per image, read into zoo's :class:`zoo.Dataset` (each image one example,
``Example.fields``: ``mask`` (the PNG's path), ``size`` ([width, height]) and ``categories`` (the
class names, index order)):

- a folder (:class:`MaskFolderFormat`) with ``images/``, ``masks/`` (a PNG per image, the image's
  stem) and ``classes.txt`` (one name a line; line 1 is index 0);
- Pascal VOC's own (:class:`VocMasksFormat`): ``JPEGImages/`` beside ``SegmentationClass/``
  (paletted PNGs), ``ImageSets/Segmentation/train.txt`` (or ``trainval.txt``) and ``val.txt``
  as the data's own test set, VOC's 21 classes unless a ``classes.txt`` lies beside them.

COCO JSON (polygons or RLE: :mod:`zoo_dense.formats` reads it) gives objects instead; a picture's
mask is then painted from them (:func:`decode`). In every mask a pixel holds its class's index,
and 255 means "ignore" (VOC's outlines, COCO's crowds): never trained on, never scored.

Bad input is one line each, naming the file: an image without its mask, a mask whose size is not
its image's, a value that is no class's index (:func:`mask_problem`), an object whose polygon is
empty (:func:`objects_problem`); the image is left out with ``--skip-bad``.

Stdlib only at import; PIL, numpy and pycocotools load inside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo import Dataset, InputError, Problem

__all__ = ["MaskFolderFormat", "VocMasksFormat", "IGNORE", "VOC_CLASSES", "decode", "mask_problem",
           "objects_problem", "painted", "read_classes"]

#: The index of pixels that are neither trained on nor scored.
IGNORE = 255
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def read_classes(path: Path) -> tuple[str, ...]:
    """The names of ``classes.txt``, one a line (line 1 is index 0), or one line saying why not."""
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable class list ({type(exc).__name__}); write one class name a line, "
                         f"UTF-8") from None
    repeated = sorted({n for n in names if names.count(n) > 1})
    if not names or repeated or len(names) > IGNORE:
        why = (f"names {repeated[0]!r} twice" if repeated else "is empty" if not names
               else f"lists {len(names)} classes (at most {IGNORE}: index {IGNORE} means ignore)")
        raise InputError(f"{path}: the class list {why}; give each class one line, line 1 being index 0")
    return tuple(names)


def _png(path: Path) -> Any:
    """A mask's indices (HxW uint8) from an index (L, P, I) PNG; ValueError for colours."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("L", "P", "I", "I;16", "1"):
            raise ValueError(f"mode {image.mode}: a mask holds one class index a pixel (an index or paletted PNG)")
        values = np.asarray(image)
    if values.max(initial=0) > IGNORE or values.min(initial=0) < 0:
        raise ValueError(f"value {int(values.max())} is not a class index (0..{IGNORE - 1}, {IGNORE}: ignore)")
    return values.astype(np.uint8)


def decode(value: Mapping[str, Any], count: int) -> Any:
    """One picture's class-index mask (HxW uint8, :data:`IGNORE` where not scored) from its target
    record: ``{"mask": PNG path}``, or ``{"objects": [{"index", "segmentation", "crowd"}], "size"}``
    (COCO polygons or RLE painted in order with pycocotools, a crowd as ignore, the rest index 0).
    ``count``: the classes; an index beyond them becomes ignore (checked earlier, one line)."""
    import numpy as np

    if "mask" in value:
        mask = _png(Path(value["mask"]))
    else:
        width, height = value["size"]
        mask = np.zeros((height, width), np.uint8)
        for record in value["objects"]:
            covered = painted(record["segmentation"], height, width)
            mask[covered] = IGNORE if record.get("crowd") else int(record["index"])
    mask[(mask >= count) & (mask != IGNORE)] = IGNORE
    return mask


def painted(segmentation: Any, height: int, width: int) -> Any:
    """Where a COCO segmentation (polygons, uncompressed or compressed RLE) covers the picture."""
    from pycocotools import mask as coco

    if isinstance(segmentation, list):
        rle = coco.merge(coco.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = coco.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation, counts=segmentation["counts"].encode() if isinstance(segmentation["counts"], str)
                   else segmentation["counts"])
    return coco.decode(rle).astype(bool)


def mask_problem(path: Path, size: Sequence[int] | None, count: int) -> str | None:
    """Why the mask file at ``path`` cannot be the mask of an image of ``size`` (width, height)
    with ``count`` classes, or None."""
    import numpy as np

    if not path.is_file():
        return f"no mask {path}; add it (a PNG with the image's stem) or remove the image"
    try:
        values = _png(path)
    except (OSError, ValueError) as exc:
        return f"mask {path.name}: {exc}"
    if size is not None and tuple(values.shape[::-1]) != tuple(size):
        return (f"mask {path.name} is {values.shape[1]}x{values.shape[0]}, its image {size[0]}x{size[1]}; masks "
                f"have their image's size")
    found = np.unique(values)
    bad = [int(v) for v in found if v >= count and v != IGNORE]
    if bad:
        return (f"mask {path.name} holds class index {bad[0]}, and the class list has {count} (0..{count - 1}, "
                f"{IGNORE}: ignore); fix the mask or add the class")
    return None


def objects_problem(objects: Sequence[Mapping[str, Any]], size: Sequence[int] | None = None) -> str | None:
    """Why a COCO picture's objects cannot paint its mask (an object without a polygon or RLE, a
    polygon of fewer than 3 points, an RLE of another size than the picture's ``size`` (width,
    height)), or None."""
    for number, record in enumerate(objects, start=1):
        segmentation = record.get("segmentation")
        if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            if size is not None and list(segmentation["size"]) != [int(size[1]), int(size[0])]:
                return (f"object {number} ({record.get('class')}): its RLE is {segmentation['size'][1]}x"
                        f"{segmentation['size'][0]}, the picture {size[0]}x{size[1]}; an RLE has its picture's size "
                        f"(fix the annotation or remove it)")
            continue
        polygons = segmentation if isinstance(segmentation, list) else []
        if not polygons or any(not isinstance(p, list) or len(p) < 6 or len(p) % 2 for p in polygons):
            return (f"object {number} ({record.get('class')}): an empty polygon (a segmentation needs polygons of "
                    f"at least 3 points, or RLE); fix the annotation or remove it")
    return None


def _dataset(name: str, pairs: Sequence[tuple[Path, Path]], names: Sequence[str], problems: list[Problem],
             test: Dataset | None = None) -> Dataset:
    """A dataset of (image, mask) pairs, each mask checked (:func:`mask_problem`)."""
    from zoo_dense.formats import dataset_of, image_size

    rows = []
    for image, mask in pairs:
        size = image_size(image)
        why = mask_problem(mask, size, len(names))
        rows.append((image, str(image), {"mask": str(mask), "size": tuple(size or (0, 0))}, [why] if why else []))
    return dataset_of(name, rows, names, problems, test)


class MaskFolderFormat:
    """``--data FOLDER``: ``images/``, ``masks/`` (a PNG per image, the image's stem) and
    ``classes.txt`` (see the module)."""

    name = "masks"

    def detect(self, path: str | Path) -> bool:
        root = Path(path)
        return root.is_dir() and (root / "images").is_dir() and (root / "masks").is_dir()

    def load(self, path: str | Path, modality: str) -> Dataset:
        from zoo_dense.formats import IMAGE_SUFFIXES, require_image

        root = Path(path)
        require_image(modality, str(root))
        if not (root / "classes.txt").is_file():
            raise InputError(f"{root}: a segmentation folder needs classes.txt beside images/ and masks/ (one class "
                             f"name a line; line 1 is index 0)")
        names = read_classes(root / "classes.txt")
        images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        stems = {p.stem for p in images}
        problems = [Problem(str(orphan), f"a mask without an image (no {orphan.stem}.* in {root / 'images'}); add "
                                         f"the image or remove the mask")
                    for orphan in sorted((root / "masks").glob("*.png")) if orphan.stem not in stems]
        return _dataset(str(root), [(p, root / "masks" / f"{p.stem}.png") for p in images], names, problems)


class VocMasksFormat:
    """``--data VOC2012/``: Pascal VOC's segmentation layout (see the module). A VOC folder that also
    has ``Annotations/`` is read for its boxes (detection); give its ``SegmentationClass/`` folder
    to read its masks."""

    name = "voc-masks"

    def _root(self, path: str | Path) -> Path | None:
        given = Path(path)
        if given.name == "SegmentationClass" and (given.parent / "JPEGImages").is_dir():
            return given.parent
        if (given / "SegmentationClass").is_dir() and (given / "JPEGImages").is_dir() \
                and not (given / "Annotations").is_dir():
            return given
        return None

    def detect(self, path: str | Path) -> bool:
        return self._root(path) is not None

    def load(self, path: str | Path, modality: str) -> Dataset:
        from zoo_dense.formats import read_ids, require_image

        root = self._root(path)
        if root is None:
            raise InputError(f"{path}: not a Pascal VOC segmentation folder (JPEGImages/ and SegmentationClass/)")
        require_image(modality, str(root))
        names = read_classes(root / "classes.txt") if (root / "classes.txt").is_file() else VOC_CLASSES
        lists = root / "ImageSets" / "Segmentation"
        chosen = next((lists / f for f in ("train.txt", "trainval.txt") if (lists / f).is_file()), None)
        masks = root / "SegmentationClass"
        train = read_ids(chosen) if chosen else sorted(p.stem for p in masks.glob("*.png"))
        held = read_ids(lists / "val.txt") if chosen and chosen.name == "train.txt" and (lists / "val.txt").is_file() else []

        def pairs(ids: Sequence[str]) -> list[tuple[Path, Path]]:
            return [(root / "JPEGImages" / f"{key}.jpg", masks / f"{key}.png") for key in ids]

        test = _dataset(f"{root} [val]", pairs(held), names, []) if held else None
        return _dataset(str(root), pairs(train), names, [], test)

