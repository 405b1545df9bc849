"""``--data photos``: real photographs, offline: the cut-out photos of Debian's tuxpaint-stamps-default.

The package (``install.sh`` installs it, like espeak-ng) ships Tux Paint's stamps under
``/usr/share/tuxpaint/stamps/<topic>/<subject>/``: photographs of animals, fruit and the like, and
drawings (cartoons, letters, road signs, currency signs). The demo takes six subject folders as its
classes (:data:`CLASSES`, every subfolder included) and keeps a stamp when it is a photograph:

1. a ``.png`` file (the package's ``.svg`` stamps are all vector drawings);
2. not under a folder named ``cartoon`` (where the package files its drawn versions);
3. in colour (PNG mode neither ``L`` nor ``LA``: the greyscale stamps are line drawings);
4. not flat-filled: under half (:data:`FLAT_LIMIT`) of the pairs of side-by-side opaque pixels
   have exactly the same colour. Drawings are filled with flat colour (0.8-1.0 of pairs measured
   in these folders: the echidna silhouette, the cartoon hedgehog, the bee, the currency signs);
   photographs are not (0.0-0.45, the palette-reduced flowers included).

That keeps 189 photographs: birds 35, coins 22, flowers 25, fruit 26, mammals 63, vegetables 18.
Each is laid on white paper (the stamps are cut out on a transparent background) and split,
per class, by a permutation seeded with :data:`SPLIT_SEED`: half (rounded down) for training,
the rest for the test set (93 train, 96 test), which the dataset carries as its own ``test``.

Made once into ``$ZOO_HOME/datasets/photos-v1`` (one flat folder: ``CLASS.NAME.png`` files and
``manifest.json`` with each file's split, class, source stamp, size and sha256), written whole
and renamed into place under a lock (:func:`zoo.atomic.atomic_write_folder`). Every load checks
each file's size and sha256 against the manifest: a damaged or half-made folder is made again.

Stdlib only at import: this module is a built-in dataset format, loaded with every plugin host.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from zoo.data.dataset import Dataset, Example
from zoo.errors import InputError

__all__ = ["PhotosFormat", "ensure_photos", "is_photograph", "CLASSES", "STAMPS", "SPLIT_SEED", "FLAT_LIMIT"]

NAME = "photos"
VERSION = 1
PACKAGE = "tuxpaint-stamps-default"
#: Where Debian installs the stamps.
STAMPS = Path("/usr/share/tuxpaint/stamps")
#: Class -> its subject folder under the stamps (every subfolder included, ``cartoon`` ones excepted).
CLASSES = {"birds": "animals/birds", "coins": "symbols/money", "flowers": "plants/flowers", "fruit": "food/fruit",
           "mammals": "animals/mammals", "vegetables": "food/vegetables"}
#: A stamp with at least this share of identical side-by-side opaque pixels is a drawing.
FLAT_LIMIT = 0.5
SPLIT_SEED = 20261205
_FIX = "set ZOO_HOME to a writable folder with space"


def _missing() -> InputError:
    return InputError(f"--data photos is made from Debian's {PACKAGE} (its photographs, under {STAMPS}), which is "
                      f"not installed: run ./install.sh, or `apt-get install {PACKAGE}` (Debian/Ubuntu)")


def flatness(image: Any) -> float:
    """The share of pairs of side-by-side opaque pixels (alpha 250 and over) whose colours are equal."""
    import numpy as np

    pixels = np.asarray(image.convert("RGBA"), dtype=np.int16)
    opaque = pixels[..., 3] >= 250
    pairs = opaque[:, 1:] & opaque[:, :-1]
    same = (pixels[:, 1:, :3] == pixels[:, :-1, :3]).all(axis=-1) & pairs
    return float(same.sum()) / max(1, int(pairs.sum()))


def is_photograph(path: Path) -> bool:
    """The rule of the module's docstring, for one stamp file."""
    from PIL import Image

    if path.suffix.lower() != ".png" or "cartoon" in path.parts:
        return False
    with Image.open(path) as image:
        return image.mode not in ("L", "LA") and flatness(image) < FLAT_LIMIT


def _package_version() -> str:
    """The installed package's version (recorded: another version may hold other stamps)."""
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True,
                              check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def _plan(stamps: Path) -> list[dict[str, str]]:
    """Every photograph with its class, split and file name, in a fixed order."""
    import numpy as np

    plan = []
    for number, (label, subject) in enumerate(sorted(CLASSES.items())):
        found = sorted(p for p in (stamps / subject).rglob("*.png") if is_photograph(p))
        order = np.random.default_rng([SPLIT_SEED, number]).permutation(len(found))
        train = set(order[: len(found) // 2].tolist())
        for i, source in enumerate(found):
            relative = source.relative_to(stamps / subject)
            name = f"{label}.{'_'.join(relative.with_suffix('').parts)}.png"
            plan.append({"file": name, "class": label, "split": "train" if i in train else "test",
                         "source": str(source.relative_to(stamps))})
    return plan


def _on_paper(source: Path) -> bytes:
    """The stamp laid on white paper, as RGB PNG bytes."""
    import io

    from PIL import Image

    with Image.open(source) as image:
        rgba = image.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    paper.alpha_composite(rgba)
    out = io.BytesIO()
    paper.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def _intact(folder: Path) -> dict[str, Any] | None:
    """The manifest, when every file it lists has its recorded size and sha256; else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("version") != VERSION:
            return None
        for entry in manifest["photos"]:
            path = folder / entry["file"]
            size, digest = manifest["files"][entry["file"]]
            if path.stat().st_size != size or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_photos(root: Path | None = None, stamps: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The generated folder and its manifest, made now when missing or damaged."""
    from zoo.atomic import atomic_write_folder, ensure_folder, json_bytes
    from zoo.cache import Cache

    cache = Cache()
    home = Path(root) if root is not None else cache.root / "datasets"
    folder = home / f"{NAME}-v{VERSION}"
    manifest = _intact(folder)
    if manifest is not None:
        return folder, manifest
    stamps = Path(stamps) if stamps is not None else STAMPS
    if not all((stamps / subject).is_dir() for subject in CLASSES.values()):
        raise _missing()
    ensure_folder(home, _FIX)
    with cache.lock(home / f".{NAME}"):
        manifest = _intact(folder)
        if manifest is not None:  # another process made it while this one waited
            return folder, manifest
        plan = _plan(stamps)
        files = {entry["file"]: _on_paper(stamps / entry["source"]) for entry in plan}
        manifest = {"name": NAME, "version": VERSION, "package": PACKAGE, "package_version": _package_version(),
                    "stamps": str(stamps), "classes": CLASSES, "split_seed": SPLIT_SEED, "flat_limit": FLAT_LIMIT,
                    "photos": plan,
                    "files": {name: [len(data), hashlib.sha256(data).hexdigest()] for name, data in files.items()}}
        atomic_write_folder(folder, {**files, "manifest.json": json_bytes(manifest)}, fix=_FIX)
    return folder, manifest


class PhotosFormat:
    """``photos``: 189 photographs in 6 classes, half of each class for training and the rest as the
    data's own test set (``--per-class N`` draws the N labelled photos from the training half).
    A real file or folder named ``photos`` is the user's data and wins over the demo."""

    name = NAME

    def detect(self, path: str | Path) -> bool:
        return str(path) == NAME and not Path(NAME).exists()

    def load(self, path: str | Path, modality: str) -> Dataset:
        if modality != "image":
            raise InputError(f"the photos demo holds images, but the modality is {modality!r}; use an image model")
        folder, manifest = ensure_photos()
        classes = tuple(sorted(CLASSES))

        def part(split: str) -> tuple[Example, ...]:
            return tuple(Example(folder / entry["file"], classes.index(entry["class"]),
                                 f"{NAME}:{split}/{entry['class']}/{entry['source'].rsplit('/', 1)[-1]}")
                         for entry in manifest["photos"] if entry["split"] == split)

        test = Dataset(f"{NAME} (test)", "image", classes, part("test"))
        return Dataset(NAME, "image", classes, part("train"), test=test)

