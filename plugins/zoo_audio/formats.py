"""Dataset formats for sounds: class folders of clips, and CSV manifests (``path,label``, or ``path`` with
columns of numbers a regression learns: ``--target pitch``).

A format reads and reports; whether a clip decodes, is silent or has a sane sample rate is judged
for every format by the core's checks, which ask the log-mel front end (``LogMel.problem``).
What is recognised as a clip is its suffix (:data:`zoo_audio.decoding.AUDIO_SUFFIXES`); a file
with another sound format's suffix (``.mp3``) is reported, so it is not silently left out.
"""

from __future__ import annotations

import csv
from pathlib import Path

from zoo import Dataset, Example, InputError, Problem

from zoo_audio.decoding import AUDIO_SUFFIXES, is_audio_file

__all__ = ["AudioFolderFormat", "AudioCsvFormat", "OTHER_SOUND_SUFFIXES"]

#: Sound files zoo does not decode: reported as problems, with the conversion to make.
OTHER_SOUND_SUFFIXES = frozenset({".mp3", ".m4a", ".aac", ".wma", ".opus", ".aif", ".aiff", ".amr", ".webm", ".mp4"})

#: How many files of a folder are looked at to decide whether it holds sounds.
_PEEK = 64


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _sounds(folder: Path) -> list[Path]:
    return sorted((f for f in folder.iterdir() if _visible(f) and f.is_file()
                   and (is_audio_file(f) or f.suffix.lower() in OTHER_SOUND_SUFFIXES)), key=lambda f: f.name)


def _dataset(name: str, labelled: list[tuple[str | None, Example]], problems: list[Problem]) -> Dataset:
    """Classes are the sorted labels seen; rows without one (a manifest without a label column)
    have none: label -1 and no classes, their columns in ``fields``."""
    classes = tuple(sorted({label for label, _ in labelled if label is not None}))
    index = {label: i for i, label in enumerate(classes)}
    examples = tuple(Example(e.item, index[label] if label is not None else -1, e.where, e.fields)
                     for label, e in labelled)
    return Dataset(name, "audio", classes, examples, tuple(problems))


def _unsupported(path: Path) -> Problem:
    return Problem(str(path), f"unsupported audio format {path.suffix.lower()!r}; zoo reads {', '.join(AUDIO_SUFFIXES)}: "
                              f"convert it (e.g. `ffmpeg -i {path.name} {path.stem}.flac`)")


class AudioFolderFormat:
    """``root/<class>/<clip>``: one subfolder per class, clips (.wav, .flac, .ogg) directly inside.

    It claims a folder whose class folders hold sound files and no images; hidden files and other
    files (a README) are ignored; a class folder without clips is reported as an empty class.
    """

    name = "audio-folder"

    def detect(self, path: str | Path) -> bool:
        root = Path(path)
        if not root.is_dir():
            return False
        seen = 0
        sounds = False
        for folder in sorted(root.iterdir()):
            if not (_visible(folder) and folder.is_dir()):
                continue
            for entry in folder.iterdir():
                seen += 1
                suffix = entry.suffix.lower()
                if suffix in AUDIO_SUFFIXES or suffix in OTHER_SOUND_SUFFIXES:
                    sounds = True
                elif suffix in (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"):
                    return False  # images: the image folder format's
                if seen >= _PEEK:
                    return sounds
        return sounds

    def load(self, path: str | Path, modality: str) -> Dataset:
        root = Path(path)
        entries = sorted((e for e in root.iterdir() if _visible(e)), key=lambda e: e.name)
        problems = [Problem(str(e), f"clip outside a class folder, so it has no label; move it into {root}/<class>/")
                    for e in entries if e.is_file() and is_audio_file(e)]
        labelled: list[tuple[str, Example]] = []
        for folder in (e for e in entries if e.is_dir()):
            files = _sounds(folder)
            clips = [f for f in files if is_audio_file(f)]
            problems.extend(_unsupported(f) for f in files if not is_audio_file(f))
            if not clips:
                problems.append(Problem(f"{folder}/", f"empty class {folder.name!r}: no clips "
                                                      f"({', '.join(AUDIO_SUFFIXES)}) in the folder; add clips or "
                                                      f"remove the folder"))
                continue
            labelled.extend((folder.name, Example(clip, -1, str(clip))) for clip in clips)
        return _dataset(str(root), labelled, problems)


class AudioCsvFormat:
    """A ``.csv`` manifest ``path,label`` (or ``path`` and columns of numbers) whose paths are clips
    (relative to the CSV's folder); a column named twice is refused.

    It claims a CSV with a ``path`` column whose first path has a sound suffix; image manifests
    stay with zoo's own CSV format. Rows without a path or label are reported by line.
    """

    name = "audio-csv"

    def detect(self, path: str | Path) -> bool:
        candidate = Path(path)
        if candidate.suffix.lower() != ".csv" or not candidate.is_file():
            return False
        try:
            with candidate.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle)
                column = _column(reader.fieldnames, "path")
                if column is None:
                    return False
                for row in reader:
                    value = (row.get(column) or "").strip()
                    if value:
                        suffix = Path(value).suffix.lower()
                        return suffix in AUDIO_SUFFIXES or suffix in OTHER_SOUND_SUFFIXES
        except (OSError, UnicodeDecodeError, csv.Error):
            return False
        return False

    def load(self, path: str | Path, modality: str) -> Dataset:
        manifest = Path(path)
        try:
            text = manifest.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{manifest}: cannot read the manifest ({exc}); save it as UTF-8 text") from None
        reader = csv.reader(text.splitlines())
        header = next(reader, None) or []
        names = [n.strip().lower() for n in header]
        repeated = sorted({n for n in names if n and names.count(n) > 1})
        if repeated:
            raise InputError(f"{manifest}: the column {repeated[0]!r} appears twice in the header "
                             f"({','.join(header)}); keep one")
        path_at, label_at = _index(header, "path"), _index(header, "label")
        if path_at is None or (label_at is None and len(header) < 2):
            raise InputError(f"{manifest}: the header must name a path column and a label column (path,label), or "
                             f"columns of numbers to learn (path,pitch with --target pitch); got "
                             f"{','.join(header) or 'nothing'}")
        labelled: list[tuple[str | None, Example]] = []
        problems: list[Problem] = []
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            where = f"{manifest}:{number}"
            value = row[path_at].strip() if len(row) > path_at else ""
            label = (row[label_at].strip() if len(row) > label_at else "") if label_at is not None else None
            missing = [what for what, cell in (("path", value), ("label", label)) if cell is not None and not cell]
            if missing:
                problems.append(Problem(where, f"missing {' and '.join(missing)}"))
                continue
            clip = Path(value).expanduser()
            clip = clip if clip.is_absolute() else manifest.parent / clip
            fields = {n: row[i] if i < len(row) else "" for i, n in enumerate(names) if n and i != path_at}
            labelled.append((label, Example(clip, -1, where, fields)))
        return _dataset(str(manifest), labelled, problems)


def _column(names: list[str] | None, wanted: str) -> str | None:
    return next((n for n in names or () if n and n.strip().lower() == wanted), None)


def _index(header: list[str], wanted: str) -> int | None:
    return next((i for i, n in enumerate(header) if n.strip().lower() == wanted), None)
