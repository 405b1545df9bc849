"""The data layer: formats on real files, the core checks, skip-bad, splits, fingerprints, plugins."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo import hookimpl, plugins
from zoo.data import Dataset, Example, Problem, Splits, format_order, make_splits, open_dataset
from zoo.data.splits import n_val
from zoo.errors import InputError, PluginError
from zoo.plugins import PluginHost, PluginWarning

# --------------------------------------------------------------------------- helpers


def image(path: Path, value: int = 0, size: tuple[int, int] = (8, 8)) -> Path:
    """A small real image; the format follows the suffix. ``value`` makes pixels differ."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.arange(size[0] * size[1] * 3, dtype=np.uint32).reshape(size[1], size[0], 3) * 7 + value) % 256
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def folder(root: Path, counts: dict[str, int], suffix: str = ".png") -> Path:
    """root/<class>/<i>.png with ``counts[class]`` images each."""
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image(root / name / f"{i:03d}{suffix}", value=i + 31 * len(name))
    return root


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def texts(path: Path, counts: dict[str, int]) -> Path:
    """A text,label CSV with ``counts[class]`` rows per class, classes interleaved."""
    rows = []
    for i in range(max(counts.values())):
        rows += [[f"{name} text {i}", name] for name, count in counts.items() if i < count]
    return write_csv(path, ["text", "label"], rows)


def where(dataset: Dataset | None) -> list[str]:
    return [] if dataset is None else [example.where for example in dataset.examples]


def error(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


# --------------------------------------------------------------------------- formats


def test_folder_format(tmp_path):
    root = folder(tmp_path / "pets", {"dog": 2, "cat": 3})
    image(root / "cat" / "UPPER.JPEG")
    image(root / "dog" / "x.TiF")
    image(root / "dog" / ".hidden.png")
    (root / "dog" / "notes.txt").write_text("not an image, not a problem")
    (root / ".cache").mkdir()
    data = open_dataset(root, modality="image")
    assert data.classes == ("cat", "dog")
    assert data.counts() == {"cat": 4, "dog": 3}
    assert data.problems == ()
    assert where(data)[0] == str(root / "cat" / "000.png")
    assert [Path(e.item).name for e in data.examples if e.label == 1] == ["000.png", "001.png", "x.TiF"]


def test_csv_images_resolve_against_the_csv_folder(tmp_path, monkeypatch):
    image(tmp_path / "d" / "imgs" / "a.png")
    image(tmp_path / "d" / "imgs" / "b.jpg", value=3)
    absolute = image(tmp_path / "elsewhere" / "c.png", value=5)
    manifest = write_csv(tmp_path / "d" / "train.csv", ["id", "Path", "label"],
                         [["1", "imgs/a.png", "cat"], ["2", "imgs/b.jpg", " dog "], ["3", str(absolute), "cat"]])
    monkeypatch.chdir(tmp_path / "elsewhere")
    data = open_dataset(manifest, modality="image")
    assert data.problems == () and data.classes == ("cat", "dog")
    assert [e.item for e in data.examples] == [tmp_path / "d" / "imgs" / "a.png",
                                              tmp_path / "d" / "imgs" / "b.jpg", absolute]
    assert where(data) == [f"{manifest}:2", f"{manifest}:3", f"{manifest}:4"]


def test_csv_texts_with_quoted_commas_and_newlines_keep_true_line_numbers(tmp_path):
    manifest = tmp_path / "t.csv"
    manifest.write_text('text,label\n"hello, world",greeting\n"two\nlines, and ""quotes""",other\n'
                        '\n"no label",\nbye,greeting\n', encoding="utf-8")
    data = open_dataset(manifest, modality="text")
    assert [e.item for e in data.examples] == ["hello, world", 'two\nlines, and "quotes"', "bye"]
    assert where(data) == [f"{manifest}:2", f"{manifest}:3", f"{manifest}:7"]
    assert data.problems == (Problem(f"{manifest}:6", "missing label"),)


def test_csv_layout_problems(tmp_path):
    wrong = write_csv(tmp_path / "wrong.csv", ["file", "class"], [["a.png", "cat"]])
    assert "unknown column layout (file,class)" in open_dataset(wrong, modality="image").problems[0].reason
    texty = write_csv(tmp_path / "texty.csv", ["text", "label"], [["hi", "a"]])
    (problem,) = open_dataset(texty, modality="image").problems
    assert problem.where == f"{texty}:1" and "modality is 'image'" in problem.reason
    extra = write_csv(tmp_path / "extra.csv", ["text", "label"], [["a", "x"], ["b", "c", "y"]])
    (problem,) = open_dataset(extra, modality="text").problems
    assert problem.where == f"{extra}:3" and "3 fields but the header has 2" in problem.reason
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text('text,label\nok,a\n"never closed,b\nmore,b\n', encoding="utf-8")
    (problem,) = open_dataset(unclosed, modality="text").problems
    assert problem.where == f"{unclosed}:3" and "never closed" in problem.reason


def test_jsonl_format_images_and_texts(tmp_path):
    image(tmp_path / "a.png")
    image(tmp_path / "b.png", value=1)
    manifest = tmp_path / "data.jsonl"
    manifest.write_text('{"path": "a.png", "label": "cat"}\n\n{"path": "b.png", "label": 7}\n', encoding="utf-8")
    data = open_dataset(manifest, modality="image")
    assert data.classes == ("7", "cat") and where(data) == [f"{manifest}:1", f"{manifest}:3"]
    assert data.examples[0].item == tmp_path / "a.png"
    notes = tmp_path / "notes.ndjson"
    notes.write_text('{"text": "good film", "label": "pos"}\n{"text": "bad", "label": "neg"}\n', encoding="utf-8")
    assert open_dataset(notes, modality="text").counts() == {"neg": 1, "pos": 1}


def test_digits_demo():
    data = open_dataset("digits", modality="image")
    assert len(data) == 1797 and data.classes == tuple(str(d) for d in range(10))
    first = data.examples[0].item
    assert isinstance(first, np.ndarray) and first.shape == (64, 64, 3) and first.dtype == np.uint8
    assert first.max() == 255 and first.min() < 40  # dark ink on white paper
    assert (first[:4] == 255).all() and (first[:, :4] == 255).all()  # the paper margin
    assert (first[..., 0] == first[..., 2]).all()  # grey, repeated to RGB
    assert data.examples[5].where == "digits[5]" and data.problems == ()
    splits = make_splits("digits", modality="image", seed=0)
    assert len(splits.train) + len(splits.val) == 1797 and splits.test is None
    assert sum(splits.val.counts().values()) == sum(n_val(n, 0.2) for n in data.counts().values())
    with pytest.raises(InputError, match="digits demo holds images"):
        open_dataset("digits", modality="text")


def test_no_format_names_the_path_and_the_formats_tried(tmp_path):
    with pytest.raises(InputError) as excinfo:
        open_dataset(tmp_path / "missing.parquet", modality="image")
    message = error(excinfo)
    assert "missing.parquet" in message and "no such file or folder" in message
    tried = message.split("; tried ", 1)[1].split(". ", 1)[0].split(", ")
    # every registered format, plugins' included (audio, dense), in the order they were asked
    assert {"csv", "digits", "folder", "jsonl", "photos", "audio-folder", "coco", "yolo", "voc"} <= set(tried)
    assert len(tried) == len(set(tried))


# --------------------------------------------------------------------------- bad input


def test_bad_images_error_and_skip(tmp_path):
    root = folder(tmp_path / "pets", {"cat": 3, "dog": 3})
    (root / "cat" / "zero.png").write_bytes(b"")
    (root / "cat" / "text.jpg").write_text("this is not a JPEG")
    truncated = root / "dog" / "truncated.jpg"
    image(tmp_path / "big.jpg", size=(64, 64))
    truncated.write_bytes((tmp_path / "big.jpg").read_bytes()[:400])
    with pytest.raises(InputError) as excinfo:
        make_splits(root, modality="image")
    message = error(excinfo)
    assert "3 problems in the data" in message and "--skip-bad" in message
    assert f"{root / 'cat' / 'zero.png'}: empty image file (0 bytes)" in message
    assert f"{root / 'cat' / 'text.jpg'}: not an image" in message
    assert f"{truncated}: corrupt or truncated image" in message
    splits = make_splits(root, modality="image", skip_bad=True)
    assert [p.where for p in splits.skipped] == [str(root / "cat" / "text.jpg"), str(root / "cat" / "zero.png"),
                                                 str(truncated)]
    assert splits.summary()["skipped"] == 3
    assert len(splits.train) + len(splits.val) == 6


def test_unreadable_image_in_a_csv_names_row_and_file(tmp_path):
    image(tmp_path / "a.png")
    image(tmp_path / "b.png", value=9)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    manifest = write_csv(tmp_path / "train.csv", ["path", "label"],
                         [["a.png", "x"], ["b.png", "y"], ["broken.png", "y"], ["gone.png", "x"],
                          ["a.png", "x"], ["b.png", "y"]])
    with pytest.raises(InputError) as excinfo:
        make_splits(manifest, modality="image")
    message = error(excinfo)
    assert f"{manifest}:4: corrupt or truncated image (" in message
    assert f"): {tmp_path / 'broken.png'}" in message
    assert f"{manifest}:5: image file not found: {tmp_path / 'gone.png'}" in message
    splits = make_splits(manifest, modality="image", skip_bad=True)
    assert [p.where for p in splits.skipped] == [f"{manifest}:4", f"{manifest}:5"]


def test_missing_label_error_and_skip(tmp_path):
    manifest = write_csv(tmp_path / "train.csv", ["text", "label"],
                         [["a", "x"], ["b", ""], ["c", "y"], ["d", "x"], ["e", "y"], [" ", "x"]])
    with pytest.raises(InputError) as excinfo:
        make_splits(manifest, modality="text")
    assert f"{manifest}:3: missing label" in error(excinfo)
    assert f"{manifest}:7: missing text" in error(excinfo)
    splits = make_splits(manifest, modality="text", skip_bad=True)
    assert splits.skipped == (Problem(f"{manifest}:3", "missing label"), Problem(f"{manifest}:7", "missing text"))
    assert splits.summary()["skipped"] == 2


def test_unknown_label_in_validation_data(tmp_path):
    train = texts(tmp_path / "train.csv", {"cat": 3, "dog": 3})
    val = write_csv(tmp_path / "val.csv", ["text", "label"], [["a", "cat"], ["b", "bird"], ["c", "dog"]])
    with pytest.raises(InputError) as excinfo:
        make_splits(train, modality="text", val=val)
    assert f"{val}:3: unknown label 'bird': not one of the training classes (cat, dog)" in error(excinfo)
    splits = make_splits(train, modality="text", val=val, skip_bad=True)
    assert [p.where for p in splits.skipped] == [f"{val}:3"]
    assert len(splits.train) == 6 and splits.val.counts() == {"cat": 1, "dog": 1}
    given = open_dataset(train, modality="text", classes=["dog", "cat", "cow"])
    assert given.classes == ("dog", "cat", "cow")  # a given label space keeps its order
    assert given.examples[0].label == 1  # "cat text 0"


def test_empty_class_folder_error_and_skip(tmp_path):
    root = folder(tmp_path / "pets", {"cat": 2, "dog": 2})
    (root / "bird").mkdir()
    (root / "bird" / "readme.txt").write_text("no images here")
    with pytest.raises(InputError) as excinfo:
        make_splits(root, modality="image")
    assert f"{root / 'bird'}/: empty class 'bird'" in error(excinfo)
    splits = make_splits(root, modality="image", skip_bad=True)
    assert splits.classes == ("cat", "dog") and len(splits.skipped) == 1
    assert splits.skipped[0].where == f"{root / 'bird'}/"


def test_a_class_emptied_by_skipping_is_an_error(tmp_path):
    root = folder(tmp_path / "pets", {"cat": 2, "dog": 2, "owl": 0})
    (root / "owl" / "bad.png").write_bytes(b"")
    with pytest.raises(InputError, match="class 'owl' has no usable example after skipping 1 bad one"):
        make_splits(root, modality="image", skip_bad=True)


def test_fewer_than_two_classes_is_always_an_error(tmp_path):
    only = folder(tmp_path / "one", {"cat": 3})
    for skip_bad in (False, True):
        with pytest.raises(InputError) as excinfo:
            make_splits(only, modality="image", skip_bad=skip_bad)
        assert f"{only}: 1 class found ('cat'); training needs at least two classes" in error(excinfo)
    manifest = write_csv(tmp_path / "t.csv", ["text", "label"], [["a", "x"], ["b", "x"], ["c", ""]])
    with pytest.raises(InputError, match="missing label"):
        make_splits(manifest, modality="text")
    with pytest.raises(InputError, match=r"1 class found \('x'\) after skipping 1 bad one"):
        make_splits(manifest, modality="text", skip_bad=True)


def test_non_utf8_csv_error_and_skip(tmp_path):
    manifest = tmp_path / "latin.csv"
    manifest.write_bytes("text,label\nfine,a\ncaf\u00e9,b\nok,b\nna\u00efve,a\nmore,a\n".encode("latin-1"))
    with pytest.raises(InputError) as excinfo:
        make_splits(manifest, modality="text")
    message = error(excinfo)
    assert f"{manifest}:3: not valid UTF-8 (byte 0xe9 at position 4 of the line)" in message
    assert message.index(f"{manifest}:3") < message.index(f"{manifest}:5")
    splits = make_splits(manifest, modality="text", skip_bad=True)
    assert [p.where for p in splits.skipped] == [f"{manifest}:3", f"{manifest}:5"]
    assert sorted(e.item for e in (*splits.train.examples, *splits.val.examples)) == ["fine", "more", "ok"]


def test_invalid_jsonl_lines_error_and_skip(tmp_path):
    manifest = tmp_path / "d.jsonl"
    manifest.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n[1, 2]\n'
                        '{"text": "c"}\n{"text": "d", "label": "y"}\n{"text": "e", "label": "x"}\n'
                        '{"text": "f", "label": "y"}\n', encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        make_splits(manifest, modality="text")
    message = error(excinfo)
    assert f"{manifest}:2: invalid JSON (Expecting value at column" in message
    assert f"{manifest}:3: expected a JSON object" in message
    assert f"{manifest}:4: missing label" in message
    splits = make_splits(manifest, modality="text", skip_bad=True)
    assert [p.where for p in splits.skipped] == [f"{manifest}:{n}" for n in (2, 3, 4)]
    assert len(splits.train) + len(splits.val) == 4


@pytest.mark.parametrize("row, key", [
    ('{"text": "a", "label": "x", "label": "y"}', "label"),
    ('{"text": "a", "text": "b", "label": "y"}', "text"),
    ('{"text": "a", "label": "y", "meta": {"id": 1, "id": 2}}', "id"),  # at any depth
])
def test_a_jsonl_row_with_a_key_twice_is_refused_naming_the_row_and_the_key(tmp_path, row, key):
    manifest = tmp_path / "d.jsonl"
    good = ['{"text": "%s", "label": "%s"}' % (text, label) for text, label in
            (("one", "x"), ("two", "y"), ("three", "x"), ("four", "y"))]
    manifest.write_text("\n".join([*good[:2], row, *good[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        make_splits(manifest, modality="text")
    assert f"{manifest}:3: the key {key!r} appears twice" in error(excinfo)
    splits = make_splits(manifest, modality="text", skip_bad=True)  # skipped like any bad row, never trained
    assert [p.where for p in splits.skipped] == [f"{manifest}:3"]
    assert "a" not in [e.item for e in (*splits.train.examples, *splits.val.examples)]


def test_many_problems_are_listed_ten_and_counted(tmp_path):
    rows = [[f"t{i}", "" if i < 12 else "ab"[i % 2]] for i in range(16)]
    manifest = write_csv(tmp_path / "t.csv", ["text", "label"], rows)
    with pytest.raises(InputError) as excinfo:
        make_splits(manifest, modality="text")
    message = error(excinfo)
    assert message.startswith("12 problems in the data:") and "... and 2 more" in message
    assert message.count("missing label") == 10


# --------------------------------------------------------------------------- splits


def test_stratified_split_counts(tmp_path):
    data = texts(tmp_path / "t.csv", {"a": 10, "b": 7, "c": 1, "d": 2})
    splits = make_splits(data, modality="text", val_split=0.2)
    assert splits.val.counts() == {"a": 2, "b": 1, "c": 0, "d": 1}  # round half up, >= 1 from 2 examples
    assert splits.train.counts() == {"a": 8, "b": 6, "c": 1, "d": 1}
    assert splits.test is None and splits.skipped == ()
    assert set(where(splits.train)).isdisjoint(where(splits.val))
    summary = json.loads(json.dumps(splits.summary()))
    assert summary == {"classes": ["a", "b", "c", "d"],
                       "train": {"size": 16, "per_class": {"a": 8, "b": 6, "c": 1, "d": 1}},
                       "val": {"size": 4, "per_class": {"a": 2, "b": 1, "c": 0, "d": 1}},
                       "test": None, "skipped": 0}
    lines = [int(w.rsplit(":", 1)[1]) for w in where(splits.train)]
    assert lines == sorted(lines)  # a set keeps the data's order


def test_per_class_small_labelled_set(tmp_path):
    data = texts(tmp_path / "t.csv", {"a": 20, "b": 15, "c": 12})
    splits = make_splits(data, modality="text", per_class=5, val_split=0.2, seed=3)
    assert splits.train.counts() == {"a": 4, "b": 4, "c": 4}
    assert splits.val.counts() == {"a": 1, "b": 1, "c": 1}
    assert splits.test is not None and splits.test.counts() == {"a": 15, "b": 10, "c": 7}
    everything = where(splits.train) + where(splits.val) + where(splits.test)
    assert sorted(everything) == sorted(where(open_dataset(data, modality="text")))
    assert len(set(everything)) == 47
    with pytest.raises(InputError, match="per_class=13, but class 'c' has only 12 examples"):
        make_splits(data, modality="text", per_class=13)
    with pytest.raises(InputError, match="per_class=1 leaves no validation example"):
        make_splits(data, modality="text", per_class=1)
    given = make_splits(data, modality="text", per_class=5, test=texts(tmp_path / "x.csv", {"a": 1, "c": 2}))
    assert given.test is not None and given.test.counts() == {"a": 1, "b": 0, "c": 2}


def test_explicit_validation_and_test_data(tmp_path):
    train = texts(tmp_path / "train.csv", {"a": 4, "b": 4})
    val = texts(tmp_path / "val.csv", {"a": 1, "b": 2})
    test = texts(tmp_path / "test.csv", {"b": 3})
    splits = make_splits(train, modality="text", val=val, test=test, per_class=3)
    assert splits.train.counts() == {"a": 3, "b": 3}  # all N train when validation data is given
    assert splits.val.counts() == {"a": 1, "b": 2} and splits.test.counts() == {"a": 0, "b": 3}
    assert splits.val.classes == splits.test.classes == ("a", "b")


def test_splits_are_seeded_and_deterministic_across_processes(tmp_path):
    data = texts(tmp_path / "t.csv", {"a": 30, "b": 30, "c": 30})
    first = make_splits(data, modality="text", seed=7)
    again = make_splits(data, modality="text", seed=7)
    other = make_splits(data, modality="text", seed=8)
    assert where(first.val) == where(again.val) and first.train == again.train
    assert where(first.val) != where(other.val)
    assert first.val.counts() == other.val.counts()
    few = [make_splits(data, modality="text", per_class=4, seed=s) for s in (1, 1, 2)]
    assert where(few[0].train) == where(few[1].train) != where(few[2].train)
    script = (f"from zoo.data import make_splits\n"
              f"s = make_splits({str(data)!r}, modality='text', seed=7)\n"
              f"print(','.join(e.where for e in s.val.examples))")
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": hash_seed, "PATH": ""}).stdout.strip()
        assert out.split(",") == where(first.val)


def test_split_arguments_are_checked(tmp_path):
    data = texts(tmp_path / "t.csv", {"a": 3, "b": 3})
    for kwargs, text in [({"val_split": 0}, "val_split must be between 0 and 1"),
                         ({"per_class": 0}, "per_class must be a whole number"),
                         ({"seed": -1}, "seed must be a whole number"),
                         ({"modality": "audio"}, "unknown modality 'audio'")]:
        with pytest.raises(InputError, match=text):
            make_splits(data, **{"modality": "text", **kwargs})


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_follows_content_not_location(tmp_path):
    root = folder(tmp_path / "a", {"cat": 2, "dog": 2})
    copy = folder(tmp_path / "b", {"cat": 2, "dog": 2})
    data = open_dataset(root, modality="image")
    print_ = data.fingerprint()
    assert len(print_) == 64 and data.fingerprint() == print_
    assert open_dataset(root, modality="image").fingerprint() == print_
    assert open_dataset(copy, modality="image").fingerprint() == print_  # same bytes elsewhere
    target = root / "dog" / "001.png"
    raw = bytearray(target.read_bytes())
    raw[-20] ^= 0x01  # one byte (inside the IEND/IDAT tail; PIL need not even decode it)
    target.write_bytes(bytes(raw))
    assert open_dataset(root, modality="image").fingerprint() != print_
    assert data.fingerprint() == print_  # cached per instance
    reordered = data.subset([1, 0, 2, 3])
    assert reordered.fingerprint() != data.subset(range(4)).fingerprint()


def test_fingerprint_of_arrays_and_texts():
    arrays = [np.full((4, 4, 3), i, dtype=np.uint8) for i in range(2)]

    def make(items, classes=("a", "b"), modality="image"):
        return Dataset("x", modality, classes, tuple(Example(it, i % 2, f"x[{i}]") for i, it in enumerate(items)))

    base = make(arrays).fingerprint()
    assert make([a.copy() for a in arrays]).fingerprint() == base
    changed = [arrays[0], arrays[1].copy()]
    changed[1][0, 0, 0] += 1
    assert make(changed).fingerprint() != base
    assert make(arrays, classes=("a", "c")).fingerprint() != base
    assert make(["hi", "yo"], modality="text").fingerprint() != make(["hi", "yo!"], modality="text").fingerprint()
    assert make(arrays) == make([a.copy() for a in arrays])  # arrays compare by value


# --------------------------------------------------------------------------- plugins


class _Mine:
    """A third-party format: the lines of a ``.csv`` read as ``label:text``."""

    name = "mine"

    def detect(self, path):
        return str(path).endswith(".csv")

    def load(self, path, modality):
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        pairs = [line.split(":", 1) for line in lines]
        classes = tuple(sorted({label for label, _ in pairs}))
        return Dataset(f"mine:{path}", modality, classes,
                       tuple(Example(text, classes.index(label), f"{path}:{n}")
                             for n, (label, text) in enumerate(pairs, start=1)))


def test_a_third_party_format_is_tried_before_the_built_ins(tmp_path):
    module = types.ModuleType("zoo_mine")
    module.register_dataset_formats = hookimpl(lambda register: register(_Mine()))
    host = PluginHost(load_entrypoints=False)
    host.register(module)
    plugins.reset_host(host)  # the conftest fixture restores the previous host
    assert [name for name, _ in format_order()] == ["mine", "csv", "digits", "folder", "jsonl", "photos"]
    manifest = tmp_path / "odd.csv"
    manifest.write_text("pos:good\nneg:bad\npos:fine\n", encoding="utf-8")
    data = open_dataset(manifest, modality="text")
    assert data.name == f"mine:{manifest}" and data.counts() == {"neg": 1, "pos": 2}
    splits = make_splits(manifest, modality="text", val_split=0.5)
    assert isinstance(splits, Splits) and len(splits.train) == 2
    forced = open_dataset(manifest, modality="text", format="csv")  # detection skipped
    assert "unknown column layout" in forced.problems[0].reason
    with pytest.raises(InputError, match="no dataset format named 'nope'; the formats are mine, csv"):
        open_dataset(manifest, modality="text", format="nope")


def test_a_format_that_raises_in_detect_is_skipped_and_a_wrong_load_is_a_plugin_error(tmp_path):
    class Raising:
        name = "raising"

        def detect(self, path):
            raise RuntimeError("boom")

    class Wrong:
        name = "wrong"

        def detect(self, path):
            return str(path).endswith(".wrong")

        def load(self, path, modality):
            return [("a", "b")]

    host = PluginHost(load_entrypoints=False)
    for fmt in (Raising(), Wrong()):
        module = types.ModuleType(f"zoo_{fmt.name}")
        module.register_dataset_formats = hookimpl(lambda register, f=fmt: register(f))
        host.register(module)
    plugins.reset_host(host)
    data = texts(tmp_path / "t.csv", {"a": 1, "b": 1})
    with pytest.warns(PluginWarning, match="'zoo_raising' raised in dataset format 'raising'.s detect"):
        assert len(open_dataset(data, modality="text")) == 2
    assert {p.name: p.status for p in host.plugins()}["zoo_raising"] == "broken"
    (tmp_path / "x.wrong").write_text("")
    with pytest.raises(PluginError, match="format 'wrong' \\(plugin 'zoo_wrong'\\) returned a list"):
        open_dataset(tmp_path / "x.wrong", modality="text")


def test_the_builtin_formats_plugin_imports_nothing_heavy():
    script = ("import sys, zoo.plugins\n"
              "zoo.plugins.PluginHost(load_entrypoints=False).dataset_formats()\n"
              "print([m for m in ('numpy', 'PIL', 'sklearn', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
