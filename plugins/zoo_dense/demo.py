"""``--data pasted-photos``: an offline detection and segmentation set whose boxes and masks are exact.

Made from what the machine has: the cut-out photographs of Debian's tuxpaint-stamps-default (the
189 stamps of ``--data photos``, in its 6 classes, each with its alpha channel) pasted at random
places and scales onto crops of three photographs that ship with zoo's own dependencies
(scikit-learn's ``china.jpg`` and ``flower.jpg``, matplotlib's ``grace_hopper.jpg``).

- Training images use the stamps of the photos demo's training half and crops from the left
  :data:`TRAIN_SHARE` of each photograph; test images the other stamps and the right part: the
  test set is new objects on backgrounds never used for training.
- Each image is :data:`SIDE` pixels square with 1 to 3 objects, each scaled so that its longer
  side is :data:`SMALLEST` to :data:`LARGEST` pixels, maybe mirrored, placed so that at least
  :data:`VISIBLE` of it stays in view when a later one covers it. An object's mask is where its
  alpha is at least 128 and no later object covers it; its box is that mask's bounds: both exact.
- Written as COCO JSON (``train.json``, ``test.json``: boxes, areas and each object's mask as
  uncompressed RLE) with JPEG images, a class-index PNG per image (``*.mask.png``, 0 for the
  background, ``classes.txt`` in the segmentation folder layout's order) and a manifest of every
  file's size and sha256, made once into ``$ZOO_HOME/datasets/pasted-photos-v1`` under a lock and
  renamed into place whole; every load checks the manifest and makes a damaged folder again.

Stdlib only at import (the format loads with every plugin host).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from zoo import Dataset, InputError

__all__ = ["PastedPhotosFormat", "ensure_pasted", "NAME", "SIDE", "TRAIN_IMAGES", "TEST_IMAGES"]

NAME = "pasted-photos"
VERSION = 1
SIDE = 256
TRAIN_IMAGES = 240
TEST_IMAGES = 120
SMALLEST, LARGEST = 48, 128
VISIBLE = 0.6
TRAIN_SHARE = 0.6
SEED = 20261207
_FIX = "set ZOO_HOME to a writable folder with space"


def _backgrounds() -> list[Any]:
    """The three photographs as RGB PIL images (always installed with zoo's dependencies)."""
    from pathlib import Path as P

    import matplotlib.cbook
    import sklearn.datasets
    from PIL import Image

    folder = P(sklearn.datasets.__file__).parent / "images"
    paths = [folder / "china.jpg", folder / "flower.jpg",
             P(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]
    return [Image.open(p).convert("RGB") for p in paths]


def _stamps() -> tuple[tuple[str, ...], dict[str, list[tuple[str, Path]]]]:
    """The classes and, per split, (class, stamp file) of the photos demo's photographs (its
    choice of Tux Paint's stamps and its split; it says how to install them when missing)."""
    from zoo import ensure_photos

    _, manifest = ensure_photos()
    stamps = Path(manifest["stamps"])
    split: dict[str, list[tuple[str, Path]]] = {"train": [], "test": []}
    for entry in manifest["photos"]:
        split[entry["split"]].append((entry["class"], stamps / entry["source"]))
    return tuple(sorted(manifest["classes"])), split


def _crop(background: Any, rng: Any, part: str) -> Any:
    """A random square crop of the photograph's training (left) or test (right) part, at SIDE."""
    width, height = background.size
    cut = int(width * TRAIN_SHARE)
    left, right = (0, cut) if part == "train" else (cut, width)
    side = int(rng.integers(int(0.5 * min(right - left, height)), min(right - left, height) + 1))
    x = int(rng.integers(left, right - side + 1))
    y = int(rng.integers(0, height - side + 1))
    crop = background.crop((x, y, x + side, y + side)).resize((SIDE, SIDE), 3)
    return crop.transpose(0) if rng.random() < 0.5 else crop


def _image(rng: Any, backgrounds: list[Any], stamps: list[tuple[str, Path]], classes: tuple[str, ...],
           part: str, cache: dict[Path, Any]) -> tuple[Any, Any, list[dict[str, Any]]]:
    """One picture: (RGB image, class-index mask, objects with their masks)."""
    import numpy as np
    from PIL import Image

    canvas = _crop(backgrounds[int(rng.integers(len(backgrounds)))], rng, part)
    owner = np.zeros((SIDE, SIDE), dtype=np.int16) - 1  # which object each pixel shows
    placed: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            name, path = stamps[int(rng.integers(len(stamps)))]
            if path not in cache:
                with Image.open(path) as opened:
                    cache[path] = opened.convert("RGBA")
            stamp = cache[path]
            longest = int(rng.integers(SMALLEST, LARGEST + 1))
            scale = longest / max(stamp.size)
            size = (max(8, round(stamp.size[0] * scale)), max(8, round(stamp.size[1] * scale)))
            piece = stamp.resize(size, 3)
            if rng.random() < 0.5:
                piece = piece.transpose(0)
            x, y = int(rng.integers(0, SIDE - size[0] + 1)), int(rng.integers(0, SIDE - size[1] + 1))
            alpha = np.zeros((SIDE, SIDE), dtype=bool)
            alpha[y:y + size[1], x:x + size[0]] = np.asarray(piece)[..., 3] >= 128
            if alpha.sum() < 64:
                continue
            after = owner.copy()
            after[alpha] = len(placed)
            kept = [(after == i).sum() / max(1, o["area"]) for i, o in enumerate(placed)]
            if any(share < VISIBLE for share in kept):
                continue  # it would hide too much of an earlier object
            canvas.paste(piece, (x, y), piece)
            owner = after
            placed.append({"class": name, "area": int(alpha.sum())})
            break
    objects = []
    semantic = np.zeros((SIDE, SIDE), dtype=np.uint8)
    for i, record in enumerate(placed):
        mask = owner == i
        ys, xs = np.nonzero(mask)
        semantic[mask] = classes.index(record["class"]) + 1
        objects.append({"class": record["class"], "mask": mask,
                        "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]})
    return canvas.convert("RGB"), semantic, objects


def rle(mask: Any) -> dict[str, Any]:
    """COCO's uncompressed RLE of a boolean mask: run lengths in column-major order, starting with
    the background's run (0 when the first pixel is set)."""
    import numpy as np

    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _encode(image: Any, fmt: str, **options: Any) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _make(classes: tuple[str, ...], stamps: dict[str, list[tuple[str, Path]]]) -> dict[str, bytes]:
    """Every file of the set, by name."""
    import numpy as np
    from PIL import Image

    backgrounds = _backgrounds()
    files: dict[str, bytes] = {}
    cache: dict[Path, Any] = {}
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    for part, count in (("train", TRAIN_IMAGES), ("test", TEST_IMAGES)):
        rng = np.random.default_rng([SEED, part == "test"])
        images, annotations = [], []
        for number in range(count):
            image, semantic, objects = _image(rng, backgrounds, stamps[part], classes, part, cache)
            stem = f"{part}-{number:04d}"
            files[f"{stem}.jpg"] = _encode(image, "JPEG", quality=92)
            files[f"{stem}.mask.png"] = _encode(Image.fromarray(semantic), "PNG")
            images.append({"id": number + 1, "file_name": f"{stem}.jpg", "width": SIDE, "height": SIDE})
            for record in objects:
                x0, y0, x1, y1 = record["box"]
                annotations.append({"id": len(annotations) + 1, "image_id": number + 1,
                                    "category_id": classes.index(record["class"]) + 1,
                                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(record["mask"].sum()),
                                    "iscrowd": 0, "segmentation": rle(record["mask"])})
        files[f"{part}.json"] = json.dumps({"images": images, "annotations": annotations,
                                            "categories": categories}).encode()
    files["classes.txt"] = ("\n".join(["background", *classes]) + "\n").encode()
    return files


def _intact(folder: Path) -> dict[str, Any] | None:
    """The manifest, when every file it lists has its recorded size and sha256; else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("version") != VERSION:
            return None
        for name, (size, digest) in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != size or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_pasted(root: Path | None = None) -> Path:
    """The generated folder, made now when missing or damaged."""
    from zoo import Cache, atomic_write_folder, json_bytes

    cache = Cache()
    home = Path(root) if root is not None else cache.root / "datasets"
    folder = home / f"{NAME}-v{VERSION}"
    if _intact(folder) is not None:
        return folder
    classes, stamps = _stamps()
    with cache.lock(home / f".{NAME}"):
        if _intact(folder) is not None:  # another process made it while this one waited
            return folder
        files = _make(classes, stamps)
        manifest = {"name": NAME, "version": VERSION, "seed": SEED, "side": SIDE, "classes": list(classes),
                    "images": {"train": TRAIN_IMAGES, "test": TEST_IMAGES}, "train_share": TRAIN_SHARE,
                    "files": {name: [len(data), hashlib.sha256(data).hexdigest()] for name, data in files.items()}}
        atomic_write_folder(folder, {**files, "manifest.json": json_bytes(manifest)}, fix=_FIX)
    return folder


class PastedPhotosFormat:
    """``pasted-photos``: 240 training pictures and a test set of 120 (new stamps on unseen
    backgrounds), read as COCO JSON: boxes for ``--task detect`` (the task it is claimed by), the
    objects' RLE masks painted into class masks for ``--task segment``. A real file or folder
    named ``pasted-photos`` wins."""

    name = NAME

    def detect(self, path: str | Path) -> bool:
        return str(path) == NAME and not Path(NAME).exists()

    def load(self, path: str | Path, modality: str) -> Dataset:
        from zoo_dense.formats import read_coco

        if modality != "image":
            raise InputError(f"{NAME} holds images; the model takes {modality}: use an image model")
        folder = ensure_pasted()
        return read_coco(folder / "train.json", test=read_coco(folder / "test.json"))
