"""The feature cache trusts nothing it reads: each array is checked against the sha256 its record
holds, and a cache that cannot be written costs the cache, never the run."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.data import open_dataset
from zoo.frozen.choice import LazyPass
from zoo.frozen.features import cached_features
from zoo.pulling import pull, resolve_card

from conftest import full_only, run_zoo, write_digit_folder

IMAGE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return write_digit_folder(tmp_path_factory.mktemp("digits"), dark_ink=False)


def _features(folder: Path, layers=("blocks.4",), messages=None):
    card = resolve_card(IMAGE)
    fetched = pull(card, quiet=True)
    dataset = open_dataset(folder, modality="image")
    backbone = zoo.load(card, features=[card.embedding.node, *layers])
    frozen = LazyPass(backbone, fetched, engine="auto", features=list(layers))
    arrays, record = cached_features(card, fetched, dataset, frozen, list(layers),
                                     log=(messages.append if messages is not None else lambda _: None))
    return arrays, record


def _entry(record) -> Path:
    return Path(record["path"])


def _rewrite_array(path: Path, change) -> None:
    """Replace the array in ``path`` by ``change(array)``, a valid .npy of the same shape (its
    record untouched, as bit rot or a careless copy would leave it)."""
    array = np.load(path)
    buffer = io.BytesIO()
    np.save(buffer, change(array))
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("damage", ["rows reordered", "garbage bytes", "one value changed", "truncated",
                                    "record removed", "record garbled"])
@pytest.mark.slow
def test_a_damaged_entry_is_computed_again_and_said(damage, digits):
    first, record = _features(digits)
    assert not record["hit"]
    path = _entry(record)
    if damage == "rows reordered":
        _rewrite_array(path, lambda a: a[::-1].copy())
    elif damage == "garbage bytes":
        data = bytearray(path.read_bytes())
        data[200:260] = b"\xff" * 60
        path.write_bytes(bytes(data))
    elif damage == "one value changed":
        _rewrite_array(path, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, a + 1.0, a))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "record removed":
        path.with_suffix(".json").unlink()
    else:
        path.with_suffix(".json").write_text("{not json")
    messages: list[str] = []
    again, record = _features(digits, messages=messages)
    assert not record["hit"]  # computed again, not used
    for name in first:
        np.testing.assert_allclose(again[name], first[name], atol=1e-5)
    if damage in ("rows reordered", "garbage bytes", "one value changed", "truncated"):
        assert any(str(path) in m and "damaged" in m for m in messages)
    third, record = _features(digits)
    assert record["hit"]  # replaced by a good entry


@pytest.mark.slow
def test_a_healthy_entry_is_a_hit_with_its_engine(digits):
    _features(digits)
    arrays, record = _features(digits)
    assert record["hit"] and record["engine"]["engine"] in ("onnxruntime", "torch")
    meta = json.loads(_entry(record).with_suffix(".json").read_text())
    assert meta["shape"] == list(arrays["embedding"].shape) and len(meta["sha256"]) == 64


@pytest.mark.slow
def test_a_file_where_the_cache_folder_should_be_costs_the_cache_not_the_run(zoo_env, digits):
    (zoo_env / "features").write_text("a file, not a folder")
    messages: list[str] = []
    arrays, record = _features(digits, messages=messages)
    assert arrays["embedding"].shape[0] == 24 and not record["hit"]
    notes = [m for m in messages if "feature cache not used" in m]
    assert len(notes) == 1 and str(zoo_env / "features") in notes[0] and "remove or rename" in notes[0]
    assert (zoo_env / "features").read_text() == "a file, not a folder"


def _read_only_mounts() -> bool:
    """Whether this machine lets an unprivileged mount namespace remount a folder read-only."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c",
                           "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp && ! touch /tmp/.zoo-ro-probe"],
                          capture_output=True)
    return done.returncode == 0


@full_only
@pytest.mark.slow
@pytest.mark.skipif(not _read_only_mounts(), reason="needs unshare and mount namespaces to make a read-only folder")
def test_a_read_only_zoo_home_finishes_the_run_and_the_embedding(zoo_env, digits, tmp_path):
    """A shared, read-only ZOO_HOME (weights pulled into it beforehand): finetune and embed do all
    the work and keep it, each cache saying once that it is not used."""
    assert run_zoo("pull", IMAGE).returncode == 0
    script = (f"mount --bind {zoo_env} {zoo_env} && mount -o remount,bind,ro {zoo_env} && "
              f"zoo finetune {IMAGE} --data {digits} --out {tmp_path / 'run'} && "
              f"zoo embed {IMAGE} {digits} --db {tmp_path / 'db'}")
    done = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.count("feature cache not used") == 2  # once in each of the two processes
    assert "compiling into a temporary folder" in done.stderr
    assert (tmp_path / "run" / "checkpoints" / "final.pt").is_file()
    assert not any((zoo_env / "features").glob("**/*.npy"))
