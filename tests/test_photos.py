"""--data photos: the photographs of Debian's tuxpaint-stamps-default (install.sh installs it), told
from its drawings, split once and for all, made once under $ZOO_HOME/datasets and checked when read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data import make_splits, open_dataset
from zoo.data.photos import CLASSES, STAMPS, ensure_photos, is_photograph
from zoo.errors import InputError

needs_stamps = pytest.mark.skipif(not STAMPS.is_dir() and not os.environ.get("CI"),
                                  reason="tuxpaint-stamps-default is not installed: run ./install.sh")


def stamp(path: Path, pixels: np.ndarray, mode: str = "RGBA") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def test_the_rule_tells_photographs_from_drawings(tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    photo[..., 3] = 255
    flat = np.zeros((40, 40, 4), dtype=np.uint8)
    flat[..., 3] = 255
    flat[:, 20:, :3] = (200, 30, 30)  # two flat colours: a drawing
    assert is_photograph(stamp(tmp_path / "animals/birds/photo.png", photo))
    assert not is_photograph(stamp(tmp_path / "animals/birds/drawing.png", flat))
    assert not is_photograph(stamp(tmp_path / "animals/birds/cartoon/photo.png", photo))  # the package's drawings
    assert not is_photograph(stamp(tmp_path / "animals/birds/grey.png", photo, mode="LA"))  # line drawings
    (tmp_path / "animals/birds/vector.svg").write_text("<svg/>")
    assert not is_photograph(tmp_path / "animals/birds/vector.svg")


def test_without_the_package_it_is_one_line_saying_how_to_install(tmp_path):
    with pytest.raises(InputError, match=r"tuxpaint-stamps-default.*run ./install.sh, or `apt-get install"):
        ensure_photos(root=tmp_path / "datasets", stamps=tmp_path / "no-stamps")
    assert not (tmp_path / "datasets").exists()


@pytest.mark.slow
@needs_stamps
def test_photos_are_made_once_split_and_checked_when_read(tmp_path):
    folder, manifest = ensure_photos(root=tmp_path)
    photos = manifest["photos"]
    counts = {name: sum(p["class"] == name for p in photos) for name in CLASSES}
    assert counts == {"birds": 35, "coins": 22, "flowers": 25, "fruit": 26, "mammals": 63, "vegetables": 18}
    assert all("cartoon" not in p["source"] and p["source"].endswith(".png") for p in photos)
    for name, count in counts.items():  # half of each class (rounded down) trains
        assert sum(p["class"] == name and p["split"] == "train" for p in photos) == count // 2
    assert json.loads((folder / "manifest.json").read_text())["split_seed"] == manifest["split_seed"]
    with Image.open(folder / photos[0]["file"]) as image:
        assert image.mode == "RGB"  # laid on white paper
    # made once: a second call reads it, and the split never moves
    stamp_time = (folder / "manifest.json").stat().st_mtime_ns
    again, same = ensure_photos(root=tmp_path)
    assert again == folder and same["photos"] == photos and (folder / "manifest.json").stat().st_mtime_ns == stamp_time
    # a damaged file (same size, one byte changed) is caught by its sha256, and the folder made again
    victim = folder / photos[3]["file"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    remade, _ = ensure_photos(root=tmp_path)
    assert remade == folder and victim.read_bytes() != bytes(data)
    # a missing one too
    victim.unlink()
    assert ensure_photos(root=tmp_path)[0] == folder and victim.is_file()


@needs_stamps
def test_photos_load_as_an_image_dataset_with_its_own_test_set():
    dataset = open_dataset("photos", modality="image")
    assert dataset.classes == tuple(sorted(CLASSES)) and len(dataset) == 93 and len(dataset.test) == 96
    assert not set(e.where for e in dataset.examples) & set(e.where for e in dataset.test.examples)
    splits = make_splits("photos", modality="image", per_class=5, seed=0)
    assert len(splits.test) == 96 and len(splits.train) + len(splits.val) == 30
    with pytest.raises(InputError, match="holds images"):
        open_dataset("photos", modality="text")
