"""Plain data for the data layer: an example, a problem found while loading, a dataset.

Stdlib only at import: the built-in dataset formats import this module, and they are loaded
whenever a plugin host starts (``zoo list`` included). numpy is imported only where arrays are
hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from zoo.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["Example", "Problem", "Dataset", "Item", "MODALITIES", "content_digest"]

#: An image file path, an HxWx3 uint8 image array, or a text (in the text modality).
Item = Union[str, Path, "np.ndarray"]

MODALITIES = ("image", "text", "audio")

_CHUNK = 1 << 20


@dataclass(frozen=True, eq=False)
class Example:
    """One labelled example.

    ``where`` says where it came from, for messages and the skipped list: ``"data/train.csv:12"``,
    ``"root/cat/x.jpg"``, ``"digits[123]"``. Equality compares arrays by value (a dataclass's
    default ``==`` would ask numpy for the truth value of an array); ``fields`` take no part in it.
    """

    item: Item
    label: int  # index into Dataset.classes; -1 when the data has no label column (a regression's)
    where: str
    # a manifest row's other columns (name -> value as read: a string, or a JSON number), for tasks
    # that read their targets from a column (--target); None for formats without columns (folders)
    fields: Mapping[str, Any] | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Example):
            return NotImplemented
        if (self.label, self.where) != (other.label, other.where):
            return False
        if _is_array(self.item) or _is_array(other.item):
            import numpy as np

            return _is_array(self.item) and _is_array(other.item) and np.array_equal(self.item, other.item)
        return type(self.item) is type(other.item) and self.item == other.item

    def __hash__(self) -> int:
        return hash((self.label, self.where))


@dataclass(frozen=True)
class Problem:
    """A bad row, file or line found while loading: where it is and what is wrong with it."""

    where: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Dataset:
    """Labelled examples of one modality, with the problems met while loading them.

    ``classes`` is the label space (``Example.label`` indexes it); ``examples`` holds only usable
    examples, ``problems`` what was left out and why. The data layer never keeps a bad example
    beside the good ones: whoever loads decides whether problems are fatal (``make_splits`` does).
    """

    name: str  # for display only; not part of the fingerprint
    modality: str  # "image" | "text" | "audio" (read through a front end, zoo.frontend)
    classes: tuple[str, ...]
    examples: tuple[Example, ...]
    problems: tuple[Problem, ...] = ()
    # the data's own test set, when it has one (spoken-digits: voices never heard in training):
    # ``make_splits`` tests on it and draws training and validation from ``examples`` only
    test: Dataset | None = None

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def labels(self) -> tuple[int, ...]:
        """The label of each example, in order."""
        return tuple(example.label for example in self.examples)

    def counts(self) -> dict[str, int]:
        """Examples per class, every class present (zero included), in class order."""
        counts = dict.fromkeys(self.classes, 0)
        for example in self.examples:
            if example.label >= 0:  # -1: the data has no label column (a regression's)
                counts[self.classes[example.label]] += 1
        return counts

    def subset(self, indices: Iterable[int], name: str | None = None) -> Dataset:
        """The examples at ``indices`` (in that order), same classes; problems and the data's own
        test set stay with the source."""
        examples = tuple(self.examples[i] for i in indices)
        return Dataset(name or self.name, self.modality, self.classes, examples)

    def joined(self, other: Dataset, name: str | None = None) -> Dataset:
        """This dataset's examples then ``other``'s, over the union of their class names (sorted
        when they differ), each example relabelled into it."""
        if tuple(other.classes) == tuple(self.classes):
            return Dataset(name or f"{self.name} + {other.name}", self.modality, self.classes,
                           self.examples + other.examples)
        names = tuple(sorted(set(self.classes) | set(other.classes)))
        examples = tuple(Example(e.item, names.index(d.classes[e.label]) if e.label >= 0 else -1, e.where, e.fields)
                         for d in (self, other) for e in d.examples)
        return Dataset(name or f"{self.name} + {other.name}", self.modality, names, examples)

    def column(self, name: str) -> list[Any]:
        """Each example's value in the manifest column ``name`` (None where a row lacks it)."""
        return [(e.fields or {}).get(name) for e in self.examples]

    def fingerprint(self) -> str:
        """sha256 over modality, classes, labels and content, in example order.

        Content is what a model sees: file bytes (not paths), array bytes with dtype and shape,
        text. Equal data gives an equal fingerprint wherever the files live; changing one byte of
        one file changes it. It keys the on-disk embedding cache, so it is computed once per
        instance (files are read in full, once) and cached.
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        digest = hashlib.sha256(b"zoo.data.Dataset v1\n")
        _put(digest, self.modality.encode())
        _put(digest, json.dumps(list(self.classes), ensure_ascii=False).encode())
        digest.update(len(self.examples).to_bytes(8, "little"))
        for example in self.examples:
            digest.update(example.label.to_bytes(8, "little", signed=True))
            digest.update(content_digest(example, self.modality))
        value = digest.hexdigest()
        object.__setattr__(self, "_fingerprint", value)  # frozen: a cache, not a field
        return value


def _put(digest: Any, data: bytes) -> None:
    """Length-prefixed, so that no two different sequences of pieces hash alike."""
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


def _is_array(item: object) -> bool:
    return not isinstance(item, (str, Path)) and hasattr(item, "__array_interface__")


def content_digest(example: Example, modality: str) -> bytes:
    """A tag byte and the sha256 of one example's content: what :meth:`Dataset.fingerprint` is made
    of, and what ``zoo embed`` identifies rows by (equal content, equal digest, wherever it lives)."""
    item = example.item
    if modality == "text" and isinstance(item, str):
        return b"t" + hashlib.sha256(item.encode("utf-8")).digest()
    if isinstance(item, (str, Path)):
        sub = hashlib.sha256()
        try:
            with open(item, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    sub.update(chunk)
        except OSError as exc:
            raise InputError(f"{example.where}: cannot read {item} to fingerprint the dataset "
                             f"({exc.strerror or exc}); did the file change since it was loaded?") from None
        return b"f" + sub.digest()
    import numpy as np

    array = np.asarray(item)
    sub = hashlib.sha256()
    _put(sub, f"{array.dtype.str}{array.shape}".encode())
    sub.update(array.tobytes(order="C"))
    return b"a" + sub.digest()
