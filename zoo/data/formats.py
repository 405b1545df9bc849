"""zoo's own dataset formats: image folders, CSV and JSONL manifests, and the offline ``digits`` demo.

This module is a built-in plugin (``zoo.plugins.DEFAULT_PLUGINS``), registered through the same
``register_dataset_formats`` hook as a third-party format, and imported whenever a plugin host
starts: it imports the stdlib only; numpy, PIL and scikit-learn load inside ``digits``.

A format reads and reports; it does not judge. Rows it cannot turn into an example (no label, no
path, invalid JSON, a line that is not UTF-8) become :class:`Problem` records named
``"file:LINE"`` (lines as a person counts them, the header is line 1). Whether an image decodes,
whether a label is known, and whether problems are fatal is decided once for every format by
:func:`zoo.data.open_dataset` and :func:`zoo.data.make_splits`. A format raises
:class:`InputError` only when the whole input is unusable (wrong modality, no class folders).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.data.dataset import Dataset, Example, Problem
from zoo.errors import InputError
from zoo.hookspecs import hookimpl
from zoo.strictjson import DuplicateKeyError, loads

__all__ = ["IMAGE_EXTENSIONS", "SOUND_SUFFIXES", "FolderFormat", "CsvFormat", "JsonlFormat", "DigitsFormat",
           "register_dataset_formats"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

#: Where a row's value lives, per modality (in CSV headers and JSONL objects).
_VALUE_KEY = {"image": "path", "text": "text"}

#: Side of the digits demo's images; 8x8 is too small for most backbones' first strides.
DIGITS_SIZE = 64
#: Blank paper around each digit, in original pixels (the scans are cropped to the ink).
DIGITS_MARGIN = 2


# --------------------------------------------------------------------------- shared helpers

def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _is_file_with(path: str | Path, suffixes: tuple[str, ...]) -> bool:
    candidate = Path(path)
    return candidate.suffix.lower() in suffixes and candidate.is_file()


def _read_lines(path: Path, where: str) -> tuple[list[str], list[Problem]]:
    """The file's lines, decoded as UTF-8 (a BOM is dropped), with their line ends.

    A line that is not UTF-8 becomes an empty line plus a problem naming it, so the line numbers
    of everything after it stay true. Decoding line by line is safe: UTF-8 never puts a newline
    byte inside a multi-byte character.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{where}: cannot read the file ({exc.strerror or exc}); check it exists "
                         f"and is readable") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines: list[str] = []
    problems: list[Problem] = []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.append(Problem(
                f"{where}:{number}",
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start + 1} of the "
                f"line); save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"))
            lines.append("\n")
    return lines, problems


def _row(where: str, label: object, value: object, modality: str, base: Path,
         fields: dict[str, Any] | None = None, labelled: bool = True) -> tuple[str | None, Example] | Problem:
    """One manifest row as (label name, example with a placeholder label), or the problem with it.
    ``labelled``: the manifest has a label column (without one, rows carry only their ``fields``,
    whose columns a task reads: ``--target``)."""
    key = _VALUE_KEY[modality]
    reasons: list[str] = []
    label_name = "" if label is None else str(label).strip()
    text = value if isinstance(value, str) else ""
    if labelled and not label_name:
        reasons.append("missing label")
    if not text.strip():
        reasons.append(f"missing {key}" if value is None or isinstance(value, str)
                       else f"{key} must be a string, got {json.dumps(value)}")
    if reasons:
        return Problem(where, "; ".join(reasons))
    if modality == "image":
        path = Path(text.strip()).expanduser()
        item: str | Path = path if path.is_absolute() else base / path
    else:
        item = text  # a text is kept exactly as written
    return (label_name if labelled else None), Example(item, -1, where, fields)


def _dataset(name: str, modality: str, rows: Iterable[tuple[str | None, Example] | Problem],
             problems: list[Problem], *, lines_of: str | None = None) -> Dataset:
    """Classes are the sorted label names seen; examples keep file order. Rows without a label
    (a manifest without a label column) have none: label -1 and no classes.

    ``lines_of``: the file whose ``"file:LINE"`` problems are put in line order (problems found
    while decoding come before those found while parsing).
    """
    good: list[tuple[str | None, Example]] = []
    for row in rows:
        if isinstance(row, Problem):
            problems.append(row)
        else:
            good.append(row)
    if any(label is not None for label, _ in good):  # a labelled manifest: a row without one is bad
        problems.extend(Problem(example.where, "missing label") for label, example in good if label is None)
        good = [(label, example) for label, example in good if label is not None]
    if lines_of is not None:
        problems.sort(key=lambda p: int(p.where[len(lines_of) + 1:]))
    classes = tuple(sorted({label for label, _ in good if label is not None}))
    index = {label: i for i, label in enumerate(classes)}
    examples = tuple(Example(example.item, index[label] if label is not None else -1, example.where, example.fields)
                     for label, example in good)
    return Dataset(name, modality, classes, examples, tuple(problems))


# --------------------------------------------------------------------------- folder

class FolderFormat:
    """``root/<class>/<image>``: one subfolder per class, images directly inside it.

    Extensions are matched case-insensitively; hidden files and folders are ignored, and so are
    files of other types (a README beside the images is not a problem). A class folder without
    images is reported as an empty class and is not a class; an image lying in ``root`` itself has
    no label and is reported too.
    """

    name = "folder"

    def detect(self, path: str | Path) -> bool:
        return Path(path).is_dir()

    def load(self, path: str | Path, modality: str) -> Dataset:
        root = Path(path)
        if modality != "image":
            raise InputError(f"{root}: a folder of class subfolders holds images, but the modality is "
                             f"{modality!r}; give texts as a CSV (text,label) or JSONL file")
        entries = sorted((e for e in root.iterdir() if not _hidden(e)), key=lambda e: e.name)
        problems = [Problem(str(e), f"image outside a class folder, so it has no label; move it into "
                                    f"{root}/<class>/")
                    for e in entries if e.is_file() and e.suffix.lower() in IMAGE_EXTENSIONS]
        class_dirs = [e for e in entries if e.is_dir()]
        if not class_dirs:
            raise InputError(f"{root}: no class folders; lay images out as {root}/<class>/<image> "
                             f"(one subfolder per class)")
        rows: list[tuple[str, Example] | Problem] = []
        _refuse_other_media(root, class_dirs)
        for folder in class_dirs:
            images = sorted((f for f in folder.iterdir() if not _hidden(f) and f.is_file()
                             and f.suffix.lower() in IMAGE_EXTENSIONS), key=lambda f: f.name)
            if not images:
                hint = ""
                if any(not _hidden(f) and f.is_dir() for f in folder.iterdir()):
                    hint = f" (it holds subfolders: did you mean {folder} as the data folder?)"
                problems.append(Problem(f"{folder}/", f"empty class {folder.name!r}: no images "
                                        f"({', '.join(sorted(IMAGE_EXTENSIONS))}) in the folder{hint}; "
                                        f"add images or remove the folder"))
                continue
            rows.extend((folder.name, Example(image, -1, str(image))) for image in images)
        return _dataset(str(root), modality, rows, problems)


#: Suffixes of sound files: a folder of them is no image folder (a plugin reads sounds), and a
#: path with one is no text (zoo.data.media).
SOUND_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus"})


def _refuse_other_media(root: Path, class_dirs: list[Path]) -> None:
    """Class folders that hold sounds and no image: one line saying what reads them, rather than
    an "empty class" per folder (this format is the fallback when no plugin claimed the folder)."""
    suffixes: set[str] = set()
    for folder in class_dirs:
        for entry in folder.iterdir():
            suffix = entry.suffix.lower()
            if suffix in IMAGE_EXTENSIONS:
                return
            if suffix in SOUND_SUFFIXES:
                suffixes.add(suffix)
    if suffixes:
        raise InputError(f"{root}: the class folders hold sounds ({', '.join(sorted(suffixes))}), not images, and no "
                         f"enabled dataset format reads them; the audio plugin zoo_audio does: is it disabled "
                         f"(ZOO_DISABLE_PLUGINS, see `zoo plugins`)?")


# --------------------------------------------------------------------------- csv

class CsvFormat:
    """A ``.csv`` manifest with a header: ``path,label`` (images) or ``text,label`` (texts).

    Other columns are ignored; column names are matched case-insensitively; when both ``path`` and
    ``text`` are present the modality picks. Relative paths resolve against the CSV's folder.
    Fields with commas or newlines must be quoted (standard CSV, read with the csv module).
    """

    name = "csv"

    def detect(self, path: str | Path) -> bool:
        return _is_file_with(path, (".csv",))

    def load(self, path: str | Path, modality: str) -> Dataset:
        where_file = str(path)
        lines, problems = _read_lines(Path(path), where_file)
        return _dataset(where_file, modality, self._rows(lines, where_file, modality, Path(path).parent),
                        problems, lines_of=where_file)

    @staticmethod
    def _rows(lines: list[str], where_file: str, modality: str,
              base: Path) -> Iterable[tuple[str, Example] | Problem]:
        reader = csv.reader(lines)
        header: list[str] | None = None
        value_at: int = -1
        label_at: int | None = -1
        end = 0  # the last line the reader consumed: a record starts on the line after it
        while True:
            start = end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                end = reader.line_num
                yield Problem(f"{where_file}:{start}", f"not readable as CSV ({exc})")
                continue
            end = reader.line_num
            where = f"{where_file}:{start}"
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if header is None:
                header = [cell.strip().lower() for cell in row]
                layout = _csv_layout(header, modality)
                if isinstance(layout, str):
                    yield Problem(where, layout)
                    return
                value_at, label_at = layout
                continue
            if end == len(lines) and end > start and len(row) < len(header):
                yield Problem(where, "a quote opened on this line is never closed, so the field runs "
                                     "to the end of the file; close the quote")
                continue
            if len(row) > len(header):
                yield Problem(where, f"the row has {len(row)} fields but the header has {len(header)}; "
                                     f"quote fields that contain commas")
                continue
            cells = row + [""] * (len(header) - len(row))
            fields = {name: cell for name, cell in zip(header, cells) if name and name != header[value_at]}
            yield _row(where, cells[label_at] if label_at is not None else None, cells[value_at], modality, base,
                       fields, labelled=label_at is not None)
        if header is None:
            yield Problem(f"{where_file}:1", "no header line: the file is empty; start it with "
                                             "path,label (images) or text,label (texts)")


def _csv_layout(header: list[str], modality: str) -> tuple[int, int | None] | str:
    """(value column, label column or None), or why the header does not fit. Without a label
    column the rows carry their other columns only (a task names which: ``--target``)."""
    shown = ",".join(header)
    duplicated = sorted({name for name in header if name and header.count(name) > 1})
    if duplicated:
        return f"column {duplicated[0]!r} appears twice in the header ({shown})"
    key = _VALUE_KEY[modality]
    other, other_modality = ("text", "texts") if modality == "image" else ("path", "images")
    if key not in header and other in header:
        return (f"the header ({shown}) has a {other!r} column, for {other_modality}, but the modality is "
                f"{modality!r}; use a {key!r} column or change the modality")
    if key not in header or (len(header) < 2):
        return (f"unknown column layout ({shown}): expected a header line path,label (images) or "
                f"text,label (texts), or path / text with columns of numbers (--target)")
    return header.index(key), header.index("label") if "label" in header else None


# --------------------------------------------------------------------------- jsonl

class JsonlFormat:
    """A ``.jsonl`` / ``.ndjson`` manifest: one object per line with ``path`` or ``text``, and ``label``.

    Labels are strings or integers (an integer label is the class named by its digits). Blank
    lines are skipped; relative paths resolve against the file's folder. A row with a key twice
    is a problem, not its last value (:mod:`zoo.strictjson`).
    """

    name = "jsonl"

    def detect(self, path: str | Path) -> bool:
        return _is_file_with(path, (".jsonl", ".ndjson"))

    def load(self, path: str | Path, modality: str) -> Dataset:
        where_file = str(path)
        lines, problems = _read_lines(Path(path), where_file)
        rows = (self._row(f"{where_file}:{number}", line, modality, Path(path).parent)
                for number, line in enumerate(lines, start=1) if line.strip())
        return _dataset(where_file, modality, rows, problems, lines_of=where_file)

    @staticmethod
    def _row(where: str, line: str, modality: str, base: Path) -> tuple[str, Example] | Problem:
        key = _VALUE_KEY[modality]
        try:
            obj: Any = loads(line)
        except DuplicateKeyError as exc:  # json would keep the last value: a label silently changed
            return Problem(where, f"{exc}; keep one {exc.key!r} per row")
        except json.JSONDecodeError as exc:
            return Problem(where, f"invalid JSON ({exc.msg} at column {exc.colno})")
        if not isinstance(obj, dict):
            return Problem(where, f"expected a JSON object with {key!r} and 'label', "
                                  f"got {type(obj).__name__}")
        label = obj.get("label")
        if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
            return Problem(where, f"label must be a string or an integer, got {json.dumps(label)}")
        other = "text" if key == "path" else "path"
        if key not in obj and other in obj:
            return Problem(where, f"no {key!r} key (it has {other!r}), but the modality is {modality!r}")
        fields = {name: value for name, value in obj.items() if name != key}
        return _row(where, label, obj.get(key), modality, base, fields, labelled="label" in obj)


# --------------------------------------------------------------------------- digits

class DigitsFormat:
    """``digits``: scikit-learn's 1797 handwritten digits, the offline demo (images only).

    Each 8x8 scan (values 0..16, ink high) becomes what it depicts: dark ink on white paper (as
    scikit-learn itself plots them, ``cmap=gray_r``), with a 2-pixel paper margin, up-sampled to
    64x64 with a bicubic filter and repeated to 3 channels: an HxWx3 uint8 array, like a small
    photo. Measured with efficientnet_lite0 and a linear probe (10 labels per class, 5 seeds), this
    rendering gives 0.895 test accuracy against 0.842 for light ink on black at 32x32: pretrained
    backbones know smooth images of dark strokes on light backgrounds. Classes are "0".."9";
    ``where`` is ``digits[i]``, the index in ``load_digits()``. A real file or folder named
    ``digits`` is the user's data and wins over the demo.
    """

    name = "digits"

    def detect(self, path: str | Path) -> bool:
        return str(path) == "digits" and not Path("digits").exists()

    def load(self, path: str | Path, modality: str) -> Dataset:
        if modality != "image":
            raise InputError(f"the digits demo holds images, but the modality is {modality!r}; "
                             f"use modality 'image' for it")
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise InputError("the digits demo needs scikit-learn: pip install scikit-learn "
                             "(or zoo[dev])") from None
        import numpy as np
        from PIL import Image

        bunch = load_digits()
        ink = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).clip(0, 255)
        paper = np.pad(255 - ink.astype(np.uint8), ((0, 0), (DIGITS_MARGIN,) * 2, (DIGITS_MARGIN,) * 2),
                       constant_values=255)
        big = np.stack([np.asarray(Image.fromarray(image).resize(
            (DIGITS_SIZE, DIGITS_SIZE), Image.Resampling.BICUBIC)) for image in paper])
        rgb = np.repeat(big[..., None], 3, axis=-1)
        rgb.setflags(write=False)  # examples are frozen and fingerprinted: their pixels must not move
        classes = tuple(str(int(name)) for name in bunch.target_names)
        examples = tuple(Example(rgb[i], int(label), f"digits[{i}]") for i, label in enumerate(bunch.target))
        return Dataset("digits", "image", classes, examples)


@hookimpl
def register_dataset_formats(register: Any) -> None:
    """zoo's built-in formats, registered like any plugin's."""
    from zoo.data.photos import PhotosFormat  # the offline photographs demo (stdlib at import)

    for fmt in (CsvFormat(), DigitsFormat(), FolderFormat(), JsonlFormat(), PhotosFormat()):
        register(fmt)
