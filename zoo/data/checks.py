"""The checks every dataset goes through, whatever format read it.

Formats report the rows they cannot parse; these checks judge what they did parse: the label is in
the label space, the image file opens and decodes, the array is an image, the text is not empty.
Keeping them here means a third-party format gets them for free and cannot skip them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from zoo.data.dataset import Dataset, Example, Item, Problem, _is_array
from zoo.errors import InputError, PluginError

__all__ = ["check_dataset", "label_space", "item_problem", "problems_error", "MAX_LISTED"]

#: How many problems an error message lists before "... and N more".
MAX_LISTED = 10

_SERIAL_BELOW = 32  # checking a few images is quicker without a thread pool


def label_space(found: Sequence[str], given: Sequence[str] | None) -> tuple[str, ...]:
    """The classes a dataset's labels index: ``given`` in its order, else the found names sorted.

    Sorting is by code point (``sorted``), so it does not depend on the locale. A caller who passes
    ``classes`` (say, the labels of an earlier run) keeps that order and its indices.
    """
    if given is None:
        return tuple(sorted(set(found)))
    if isinstance(given, str) or not all(isinstance(name, str) and name for name in given):
        raise InputError(f"classes must be a list of non-empty names, got {given!r}")
    space = tuple(given)
    for i, name in enumerate(space):
        if name in space[:i]:
            raise InputError(f"classes name {name!r} twice; give each class once")
    return space


def check_dataset(raw: Dataset, modality: str, classes: Sequence[str] | None = None, *,
                  known_as: str = "the given classes") -> Dataset:
    """``raw`` relabelled into its label space, with every example that fails a check moved to problems.

    ``known_as`` names the label space in messages ("the training classes" for a validation set).
    Problems of one example are joined into one record, in example order, after the format's own.
    """
    space = label_space(raw.classes, classes)
    index = {name: i for i, name in enumerate(space)}
    shown = ", ".join(space[:MAX_LISTED]) + (", ..." if len(space) > MAX_LISTED else "")
    contents = _content_problems([example.item for example in raw.examples], modality)
    examples: list[Example] = []
    problems = list(raw.problems)
    for example, content in zip(raw.examples, contents):
        unlabelled = example.label == -1 and not raw.classes  # a manifest without a label column
        if not unlabelled and not 0 <= example.label < len(raw.classes):
            raise PluginError(f"dataset {raw.name!r}: {example.where} has label index {example.label}, "
                              f"but the format gave {len(raw.classes)} classes; this is a bug in the format")
        name = None if unlabelled else raw.classes[example.label]
        reasons = [] if unlabelled or name in index else [f"unknown label {name!r}: not one of {known_as} ({shown})"]
        if content is not None:
            reasons.append(content if _names_itself(example) else f"{content}: {example.item}")
        if reasons:
            problems.append(Problem(example.where, "; ".join(reasons)))
        elif unlabelled or (index[name] == example.label and space == raw.classes):
            examples.append(example)
        else:
            examples.append(Example(example.item, index[name], example.where, example.fields))
    return Dataset(raw.name, modality, space, tuple(examples), tuple(problems))


def _names_itself(example: Example) -> bool:
    """Whether ``where`` already is the file's path (folder datasets), so the reason need not repeat it."""
    return not isinstance(example.item, (str, Path)) or str(example.item) == example.where


def _content_problems(items: list[Item], modality: str) -> list[str | None]:
    """Per item: why it cannot be used, or None. Images (and sounds) are decoded in threads (PIL and
    libsndfile release the GIL)."""
    if modality == "text":
        return [text_problem(item) for item in items]
    check = item_problem if modality == "image" else front_end_check(modality)
    if len(items) < _SERIAL_BELOW:
        return [check(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        return list(pool.map(check, items))


def front_end_check(modality: str):  # noqa: ANN201 - Callable[[object], str | None]
    """The check of another modality's items (sounds): the front end that reads them knows what a
    usable one is."""
    from zoo.frontend import problem_check

    return problem_check(modality)


def text_problem(item: object) -> str | None:
    """Why ``item`` is not a usable text, or None."""
    if not isinstance(item, str):
        return f"expected a text, got a {type(item).__name__}"
    if not item.strip():
        return "empty text"
    return None


def item_problem(item: object) -> str | None:
    """Why ``item`` is not a usable image (a path that must decode, or an HxWx3 uint8 array), or None."""
    if _is_array(item):
        shape, dtype = getattr(item, "shape", ()), str(getattr(item, "dtype", "?"))
        if len(shape) != 3 or shape[2] != 3 or dtype != "uint8" or 0 in shape:
            return f"expected an HxWx3 uint8 image array, got shape {tuple(shape)} of {dtype}"
        return None
    if not isinstance(item, (str, Path)):
        return f"expected an image path or array, got a {type(item).__name__}"
    path = Path(item)
    try:
        if path.stat().st_size == 0:
            return "empty image file (0 bytes)"
    except FileNotFoundError:
        return "image file not found"
    except OSError as exc:
        return f"cannot read the image file ({exc.strerror or exc})"
    if not path.is_file():
        return "not a file"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel: a truncated file fails here, not at training time
    except UnidentifiedImageError:
        return "not an image (PIL cannot identify the file)"
    except Image.DecompressionBombError as exc:
        return f"image too large to decode safely ({exc})"
    except Exception as exc:  # corrupt bytes make decoders raise anything; it is the data, not a bug
        return f"corrupt or truncated image ({type(exc).__name__}: {exc})"
    return None


def problems_error(problems: Sequence[Problem]) -> InputError:
    """The error for problems found while loading: the first few with where and why, and the count."""
    count = len(problems)
    listed = "\n".join(f"  {problem.where}: {problem.reason}" for problem in problems[:MAX_LISTED])
    more = f"\n  ... and {count - MAX_LISTED} more" if count > MAX_LISTED else ""
    return InputError(
        f"{count} {'problem' if count == 1 else 'problems'} in the data:\n{listed}{more}\n"
        f"Fix {'it' if count == 1 else 'them'}, or pass --skip-bad (skip_bad=True) to leave the bad "
        f"rows and files out; what is skipped is listed with the run."
    )
