"""Detection data as it comes: COCO JSON, YOLO (``data.yaml`` and a ``.txt`` per image) and Pascal
VOC (``Annotations/*.xml`` beside ``JPEGImages/``), read into zoo's :class:`zoo.Dataset`.

Each image is one example (``item``: its path; no class label, so ``label`` is -1 and the
dataset's ``classes`` are empty: a detection's classes belong to its objects). What a task reads is
in ``Example.fields``:

- ``objects``: one record per object, ``{"class": name, "box": [x0, y0, x1, y1], "crowd": bool}``
  in the image's pixels (``crowd``: COCO's ``iscrowd``, VOC's ``difficult``: scored as "ignore",
  never trained on), plus ``segmentation`` (COCO's polygons or RLE) where the data has one;
- ``size``: ``[width, height]`` (the file's, read from its header where the format does not say);
- ``categories``: every class the data declares, in its own order (COCO's categories, YOLO's
  names), or the names met (VOC), so a class without an object in a split is still a class.

A format reads and reports, one :class:`zoo.Problem` per bad row, file or object, each naming the
file and the row or object: a box outside its image (beyond :data:`TOLERANCE` pixels) or of zero
area, a class id the data does not declare, an annotation whose image is not listed, a label file
without an image, a line that is not a box. An image with a bad object is itself left out (a
picture whose objects are only partly labelled teaches the detector to miss the rest); whether
problems are fatal is ``--skip-bad``'s to decide. That an image file exists and decodes is checked
for every format by zoo's own data checks.

Stdlib only at import (the formats load with every plugin host); PIL and PyYAML load inside.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from zoo import Dataset, Example, InputError, Problem

__all__ = ["CocoFormat", "YoloFormat", "VocFormat", "TOLERANCE", "IMAGE_SUFFIXES", "dataset_of", "box_problem",
           "image_size", "require_image", "read_ids"]

#: How far (pixels) a box may stick out of its image before it is a bad box: annotation tools
#: round, and a box on the edge often ends half a pixel past it.
TOLERANCE = 1.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def box_problem(box: Sequence[float], size: Sequence[int]) -> str | None:
    """Why an ``[x0, y0, x1, y1]`` box cannot be an object of an image of ``size`` (width,
    height), or None."""
    x0, y0, x1, y1 = box
    shown = "[" + ", ".join(f"{v:g}" for v in box) + "]"
    if not all(v == v and abs(v) != float("inf") for v in box):
        return f"box {shown} is not made of finite numbers"
    if x1 <= x0 or y1 <= y0:
        return f"box {shown} (x0, y0, x1, y1) has zero area"
    width, height = size
    if x0 < -TOLERANCE or y0 < -TOLERANCE or x1 > width + TOLERANCE or y1 > height + TOLERANCE:
        return f"box {shown} lies outside the image ({width}x{height})"
    return None


def _clipped(box: Sequence[float], size: Sequence[int]) -> list[float]:
    """A box within :data:`TOLERANCE` of its image, clipped to it."""
    width, height = size
    return [min(max(float(box[0]), 0.0), width), min(max(float(box[1]), 0.0), height),
            min(max(float(box[2]), 0.0), width), min(max(float(box[3]), 0.0), height)]


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None when it cannot be read (zoo's data checks
    then say why, for the example itself)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # a missing or damaged file: the core check names it
        return None


def dataset_of(name: str, images: Iterable[tuple[Path, str, dict[str, Any] | None, list[str]]],
               categories: Sequence[str], problems: list[Problem], test: Dataset | None = None) -> Dataset:
    """A dataset from ``(path, where, fields, reasons)`` per image: an image with reasons is a
    problem (each reason joined into its one line), else an example with its fields."""
    examples = []
    for path, where, fields, reasons in images:
        if reasons:
            problems.append(Problem(where, "; ".join(reasons)))
        elif fields is not None:
            examples.append(Example(path, -1, where, {**fields, "categories": tuple(categories)}))
    return Dataset(name, "image", (), tuple(examples), tuple(problems), test)


def _record(name: str, box: Sequence[float], size: Sequence[int], crowd: bool = False,
            segmentation: Any = None) -> dict[str, Any]:
    record: dict[str, Any] = {"class": name, "box": _clipped(box, size), "crowd": bool(crowd)}
    if segmentation is not None:
        record["segmentation"] = segmentation
    return record


def require_image(modality: str, what: str) -> None:
    if modality != "image":
        raise InputError(f"{what} holds images; the model takes {modality}: use an image model")


# --------------------------------------------------------------------------- COCO


@lru_cache(maxsize=8)
def _coco_json(path: str, stamp: tuple[int, int]) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _read_coco(path: Path) -> Any:
    try:
        stat = path.stat()
    except OSError:
        return None
    return _coco_json(str(path), (stat.st_mtime_ns, stat.st_size))


class CocoFormat:
    """``--data train.json``: COCO's object detection format (``images``, ``annotations``,
    ``categories``; ``bbox`` as ``[x, y, width, height]``); an image's ``file_name`` is relative to
    the JSON's folder or to an ``images/`` folder beside it. The classes are the categories' names
    in their id order; objects keep their ``segmentation`` for instance masks."""

    name = "coco"

    def detect(self, path: str | Path) -> bool:
        candidate = Path(path)
        if candidate.suffix.lower() != ".json" or not candidate.is_file():
            return False
        data = _read_coco(candidate)
        return isinstance(data, dict) and "images" in data and "annotations" in data

    def load(self, path: str | Path, modality: str) -> Dataset:
        require_image(modality, str(path))
        return read_coco(Path(path))


def read_coco(path: Path, test: Dataset | None = None) -> Dataset:
    """The examples of one COCO JSON file (see :class:`CocoFormat`)."""
    where = str(path)
    data = _read_coco(path)
    if not isinstance(data, dict):
        raise InputError(f"{where}: not a readable COCO JSON file (UTF-8 JSON with images, annotations and "
                         f"categories); check the file")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InputError(f"{where}: COCO JSON needs a list of {key!r}; this file has "
                             f"{type(data.get(key)).__name__ if key in data else 'none'}")
    problems: list[Problem] = []
    categories: dict[Any, str] = {}
    for number, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or "id" not in category or not str(category.get("name", "")).strip():
            raise InputError(f"{where}: categories[{number}] needs an id and a name")
        categories[category["id"]] = str(category["name"]).strip()
    names = [categories[key] for key in sorted(categories, key=lambda k: (str(type(k)), k))]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{where}: categories name {repeated[0]!r} more than once; give each class one id")
    folder = path.parent
    images: dict[Any, dict[str, Any]] = {}
    order: list[Any] = []
    for number, image in enumerate(data["images"]):
        row = f"{where}: images[{number}]"
        if not isinstance(image, dict) or "id" not in image or not str(image.get("file_name", "")).strip():
            problems.append(Problem(row, "an image needs an id and a file_name"))
            continue
        name = str(image["file_name"]).strip()
        file = folder / name
        if not file.exists() and (folder / "images" / name).exists():
            file = folder / "images" / name
        size = (image.get("width"), image.get("height"))
        if not all(isinstance(v, int) and v > 0 for v in size):
            size = image_size(file)
        images[image["id"]] = {"path": file, "where": f"{row} {name!r}", "size": size, "objects": [], "reasons": []}
        order.append(image["id"])
    known = ", ".join(str(k) for k in list(categories)[:8]) + (", ..." if len(categories) > 8 else "")
    for number, annotation in enumerate(data["annotations"]):
        row = f"{where}: annotations[{number}]" + (f" (id {annotation.get('id')})" if isinstance(annotation, dict)
                                                    and "id" in annotation else "")
        if not isinstance(annotation, dict):
            problems.append(Problem(row, "an annotation must be a JSON object"))
            continue
        image = images.get(annotation.get("image_id"))
        if image is None:
            problems.append(Problem(row, f"image_id {annotation.get('image_id')!r} is not among the images; add the "
                                         f"image or remove the annotation"))
            continue
        reason = _coco_problem(annotation, categories, known, image["size"])
        if reason is not None:
            image["reasons"].append(f"{row}: {reason}")
            continue
        x, y, w, h = (float(v) for v in annotation["bbox"])
        image["objects"].append(_record(categories[annotation["category_id"]], (x, y, x + w, y + h), image["size"],
                                        annotation.get("iscrowd", 0) == 1, annotation.get("segmentation") or None))
    rows = [(image["path"], image["where"], {"objects": tuple(image["objects"]), "size": tuple(image["size"] or (0, 0))},
             image["reasons"]) for image in (images[key] for key in order)]  # an unreadable image: zoo's checks say why
    return dataset_of(where, rows, names, problems, test)


def _coco_problem(annotation: Mapping[str, Any], categories: Mapping[Any, str], known: str,
                  size: Sequence[int] | None) -> str | None:
    category = annotation.get("category_id")
    if category not in categories:
        return f"category_id {category!r} is not among the categories ({known})"
    box = annotation.get("bbox")
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                             for v in box):
        return f"bbox must be [x, y, width, height], got {json.dumps(box)[:60]}"
    if size is None:
        return None  # the image cannot be read: zoo's checks say so for the image itself
    x, y, w, h = (float(v) for v in box)
    return box_problem((x, y, x + w, y + h), size)


# --------------------------------------------------------------------------- YOLO


class YoloFormat:
    """``--data data.yaml``: Ultralytics' YOLO layout. ``data.yaml`` names the classes (``names``:
    a list, or ids to names) and the image folders (``train``, ``val``, ``test``: folders, or
    ``.txt`` files listing images, relative to ``path`` or to the YAML's folder); each image
    ``.../images/.../x.jpg`` has its labels in ``.../labels/.../x.txt``, one object a line:
    ``class cx cy w h`` in fractions of the image (a segment's ``class x1 y1 x2 y2 ...`` gives its
    box). An image without a label file has no objects. ``train`` is the data; the data's own
    test set is ``test`` (or, without one, ``val``)."""

    name = "yolo"

    def detect(self, path: str | Path) -> bool:
        candidate = Path(path)
        if candidate.suffix.lower() not in (".yaml", ".yml") or not candidate.is_file():
            return False
        try:
            config = _yaml(candidate)
        except InputError:
            return False
        return isinstance(config, dict) and "names" in config and "train" in config

    def load(self, path: str | Path, modality: str) -> Dataset:
        require_image(modality, str(path))
        path = Path(path)
        config = _yaml(path)
        if not isinstance(config, dict):
            raise InputError(f"{path}: a YOLO data.yaml is a mapping with names and train; check the file")
        names = _yolo_names(config, path)
        root = Path(str(config.get("path") or "."))
        root = root if root.is_absolute() else path.parent / root
        held = config.get("test") or config.get("val")
        test = _yolo_split(path, root, held, names, "test" if config.get("test") else "val") if held else None
        return _yolo_split(path, root, config["train"], names, "train", test)


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: not readable YAML ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None


def _yolo_names(config: Mapping[str, Any], path: Path) -> list[str]:
    names = config["names"]
    if isinstance(names, dict):
        ids = sorted(names)
        if ids != list(range(len(ids))):
            raise InputError(f"{path}: names must be numbered 0..{len(ids) - 1} without gaps, got ids {ids[:8]}")
        names = [names[i] for i in ids]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise InputError(f"{path}: names must be a non-empty list of class names (or ids to names)")
    count = config.get("nc")
    if count is not None and count != len(names):
        raise InputError(f"{path}: nc is {count} but names lists {len(names)} classes; make them agree")
    return [n.strip() for n in names]


def _yolo_images(root: Path, spec: Any, yaml_path: Path) -> list[Path]:
    parts = spec if isinstance(spec, list) else [spec]
    found: list[Path] = []
    for part in parts:
        place = Path(str(part))
        place = place if place.is_absolute() else root / place
        if place.is_dir():
            found += sorted(p for p in place.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif place.is_file() and place.suffix.lower() == ".txt":
            for line in place.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    listed = Path(line.strip())
                    found.append(listed if listed.is_absolute() else place.parent / listed)
        else:
            raise InputError(f"{yaml_path}: {part!r} is neither a folder of images nor a .txt list of them "
                             f"(looked at {place})")
    return found


def _label_file(image: Path) -> Path:
    """YOLO's rule: the last ``images`` folder of the path becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _yolo_split(yaml_path: Path, root: Path, spec: Any, names: Sequence[str], split: str,
                test: Dataset | None = None) -> Dataset:
    images = _yolo_images(root, spec, yaml_path)
    problems: list[Problem] = []
    rows = []
    labels_seen = set()
    for image in images:
        label = _label_file(image)
        labels_seen.add(label)
        where = str(image)
        size = image_size(image)
        if size is None:
            rows.append((image, where, {"objects": (), "size": (0, 0)}, []))  # zoo's checks say why
            continue
        objects, reasons = _yolo_objects(label, names, size)
        rows.append((image, where, {"objects": tuple(objects), "size": size}, reasons))
    for folder in {_label_file(i).parent for i in images}:
        for orphan in sorted(set(folder.glob("*.txt")) - labels_seen):
            problems.append(Problem(str(orphan), f"a label file without an image (no {orphan.stem}.* in "
                                                 f"{str(folder).replace('labels', 'images')}); add the image or remove "
                                                 f"the file"))
    return dataset_of(f"{yaml_path} [{split}]", rows, names, problems, test)


def _yolo_objects(label: Path, names: Sequence[str], size: tuple[int, int]) -> tuple[list[dict[str, Any]], list[str]]:
    if not label.is_file():
        return [], []  # an image without objects
    try:
        lines = label.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{label}: unreadable label file ({exc})"]
    objects, reasons = [], []
    width, height = size
    for number, line in enumerate(lines, start=1):
        values = line.split()
        if not values:
            continue
        row = f"{label}:{number}"
        try:
            numbers = [float(v) for v in values[1:]]
            cls = int(values[0])
        except ValueError:
            reasons.append(f"{row}: expected 'class cx cy w h' (numbers), got {line.strip()[:60]!r}")
            continue
        if not 0 <= cls < len(names):
            reasons.append(f"{row}: class {cls} is not among the {len(names)} names of data.yaml (0..{len(names) - 1})")
            continue
        if len(numbers) == 4:
            cx, cy, w, h = numbers
            box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
        elif len(numbers) >= 6 and len(numbers) % 2 == 0:  # a segment: its points' bounds
            xs, ys = numbers[0::2], numbers[1::2]
            box = [min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height]
        else:
            reasons.append(f"{row}: expected 'class cx cy w h' or a segment 'class x1 y1 x2 y2 ...', got "
                           f"{len(values)} values")
            continue
        why = box_problem(box, size)
        if why is not None:
            reasons.append(f"{row}: {why}")
            continue
        objects.append(_record(names[cls], box, size))
    return objects, reasons


# --------------------------------------------------------------------------- Pascal VOC


class VocFormat:
    """``--data VOC2007/``: Pascal VOC's layout, ``Annotations/*.xml`` (``filename``, ``size``, an
    ``object`` per box with ``name``, ``bndbox`` and ``difficult``) beside ``JPEGImages/``. With
    ``ImageSets/Main/trainval.txt`` (or ``train.txt``) only the images it lists are the data, and
    ``ImageSets/Main/test.txt`` is the data's own test set. The classes are the names met."""

    name = "voc"

    def detect(self, path: str | Path) -> bool:
        root = Path(path)
        return root.is_dir() and (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir()

    def load(self, path: str | Path, modality: str) -> Dataset:
        require_image(modality, str(path))
        root = Path(path)
        lists = root / "ImageSets" / "Main"
        chosen = next((lists / f for f in ("trainval.txt", "train.txt") if (lists / f).is_file()), None)
        every = sorted(p.stem for p in (root / "Annotations").glob("*.xml"))
        train_ids = read_ids(chosen) if chosen else every
        test_ids = read_ids(lists / "test.txt") if chosen and (lists / "test.txt").is_file() else []
        parsed = {key: _voc_file(root, key) for key in [*train_ids, *test_ids]}
        names = sorted({o["class"] for image in parsed.values() for o in image[2]["objects"]} if parsed else set())
        test = _voc_dataset(f"{root} [test]", [parsed[k] for k in test_ids], names) if test_ids else None
        return _voc_dataset(str(root), [parsed[k] for k in train_ids], names, test)


def read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _voc_dataset(name: str, rows: list[Any], names: list[str], test: Dataset | None = None) -> Dataset:
    return dataset_of(name, rows, names, [], test)


def _voc_file(root: Path, key: str) -> tuple[Path, str, dict[str, Any], list[str]]:
    xml = root / "Annotations" / f"{key}.xml"
    where = str(xml)
    image = root / "JPEGImages" / f"{key}.jpg"
    try:
        tree = ElementTree.parse(xml).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        return image, where, {"objects": (), "size": (0, 0)}, [f"unreadable XML ({exc})"]
    filename = (tree.findtext("filename") or "").strip()
    if filename:
        image = root / "JPEGImages" / filename
    size = image_size(image)
    declared = (_int(tree.findtext("size/width")), _int(tree.findtext("size/height")))
    size = size or (declared if all(declared) else None)
    if size is None:
        return image, where, {"objects": (), "size": (0, 0)}, []  # zoo's checks name the missing image
    objects, reasons = [], []
    for number, element in enumerate(tree.findall("object"), start=1):
        row = f"object {number}"
        name = (element.findtext("name") or "").strip()
        if not name:
            reasons.append(f"{row}: no name")
            continue
        try:
            box = [float(element.findtext(f"bndbox/{k}") or "nan") for k in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError:
            reasons.append(f"{row} ({name}): bndbox must hold xmin, ymin, xmax, ymax numbers")
            continue
        why = box_problem(box, size)
        if why is not None:
            reasons.append(f"{row} ({name}): {why}")
            continue
        objects.append(_record(name, box, size, (element.findtext("difficult") or "0").strip() == "1"))
    return image, where, {"objects": tuple(objects), "size": size}, reasons


def _int(text: str | None) -> int:
    try:
        return int(float(text or 0))
    except ValueError:
        return 0
