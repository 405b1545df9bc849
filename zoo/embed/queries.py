"""Whether a query (``zoo search``) or an input to classify (``zoo fewshot --predict``) is of the
modality the vectors were made of, checked before any model loads.

The command line gives every query as a string, so a text table would embed ``cat.png`` or
``clip.wav`` as a sentence and answer with confident neighbours of the words. A string that names
something other than a text is refused in one line, both ways round:

==========================  ==========================================  =================================
query                       text table / classifier                     image or audio table / classifier
==========================  ==========================================  =================================
text                        searched                                    refused: give a file
file of its modality        refused unless ``--text`` (the words)       searched
file of another modality    refused unless ``--text``                   refused: search a table of that
name of a media file,       refused unless ``--text``: a typo'd path    refused: no such file
  no such file
folder                      refused unless ``--text``                   refused: one file, not a folder
URL                         refused unless ``--text``: zoo downloads    refused: download it first
                            no query
``--text``                  the string as words, whatever it names      refused: the table holds no texts
==========================  ==========================================  =================================

A file's modality is its suffix (:func:`zoo.data.media.file_modality`); a file of no known suffix
is left to the reader of the table's modality to accept or refuse. A string with spaces that does
not exist is a sentence, even when it ends in ``.png``.

An image-text model embeds both (CLIP, SigLIP: its table holds image vectors, and its text tower
puts a sentence in their space): a query of either is accepted (:func:`query_modality` says
which), by the rules above: an image file is an image, a string that names no file a text
(``--text`` for words that name one), and everything refused above stays refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from zoo.errors import InputError

__all__ = ["check_query", "query_modality"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S+$")


def check_query(query: Any, modality: str, *, holder: str, noun: str = "table", as_text: bool = False) -> None:
    """Refuse ``query`` when it is not ``modality`` data (the table's or the classifier's).

    ``holder`` names what holds the vectors, for the message ("table 'x' (model)"); ``noun`` is
    what kind of thing it is (``table``, ``classifier``), to say where another query belongs;
    ``as_text``: the user said the string is a text (``--text``), whatever it names."""
    query_modality(query, (modality,), holder=holder, noun=noun, as_text=as_text)


def query_modality(query: Any, modalities: tuple[str, ...], *, holder: str, noun: str = "table",
                   as_text: bool = False) -> str:
    """Which of ``modalities`` ``query`` is (the first is the stored vectors'; an image-text
    model's table also takes ``text``, through its text tower), or one line refusing it."""
    modality = modalities[0]
    what = f"{holder} holds {modality} embeddings"
    if modality == "text":
        _check_text(query, what, noun, as_text)
        return "text"
    if "text" not in modalities:
        if as_text:
            raise InputError(f"--text is for text queries, but {what} and its model has no text tower: give "
                             f"{_a(modality)} file")
        if isinstance(query, (str, Path)):
            _check_file(str(query), modality, what, noun)
        return modality
    what += ", and its model's text tower embeds texts in their space"
    if (as_text or isinstance(query, str)) and _check_text(query, what, noun, as_text, files=True):
        return "text"
    if isinstance(query, (str, Path)):
        _check_file(str(query), modality, what, noun)
    return modality


def _check_text(query: Any, what: str, noun: str, as_text: bool, files: bool = False) -> bool:
    """Whether ``query`` is words (True), or, for a table that also takes ``files`` (an image-text
    model's: images), a file (False: the file checks follow); anything else is refused."""
    if not isinstance(query, str) or not query.strip():
        given = "an empty text" if isinstance(query, str) else f"an object of type {type(query).__name__}"
        raise InputError(f"{what}: it takes a non-empty text, not {given}")
    if as_text:
        return True
    shown = _shown(query)
    words = f"add --text if you mean the words {shown}"
    if _URL.match(query.strip()):
        raise InputError(f"{shown} looks like a URL, but {what} and zoo downloads no query; {words}")
    kind, exists = _named(query)
    if kind == "folder":
        raise InputError(f"{shown} is a folder, but {what}; {words}")
    if exists and files:
        return False
    if kind is not None and exists:
        raise InputError(f"{shown} is {_a(kind)} file, but {what}: use it with a {noun} of {kind} embeddings, "
                         f"or {words}")
    if kind is not None and not any(c.isspace() for c in query):
        raise InputError(f"{shown} looks like the name of {_a(kind)} file (there is no such file), but {what}; "
                         f"check the path, or {words}")
    return True


def _check_file(query: str, modality: str, what: str, noun: str) -> None:
    shown = _shown(query)
    if _URL.match(query.strip()):
        raise InputError(f"{shown} looks like a URL, but zoo downloads no query: download it and give the "
                         f"file's path ({what})")
    kind, exists = _named(query)
    if kind == "folder":
        raise InputError(f"{shown} is a folder; give one {modality} file at a time ({what})")
    if not exists:
        raise InputError(f"{what}: the query must be {_a(modality)} file, and {shown} is not a file")
    if kind is not None and kind != modality:
        raise InputError(f"{shown} is {_a(kind)} file, but {what}: use it with a {noun} of {kind} embeddings")


def _named(query: str) -> tuple[str | None, bool]:
    """(``"folder"``, the modality of the file it names by suffix, or None; whether it exists)."""
    from zoo.data.media import file_modality

    path = Path(query)
    try:
        path = path.expanduser()
    except RuntimeError:  # ~nosuchuser: the name as it is
        pass
    try:
        if path.is_dir():
            return "folder", True
        exists = path.is_file()
    except (OSError, ValueError):  # too long for a file name, or a NUL byte: no such file
        exists = False
    return file_modality(path), exists


def _shown(query: str, limit: int = 120) -> str:
    """The query quoted for a message, cut short: a long one would fill the terminal."""
    return repr(query if len(query) <= limit else query[:limit - 3] + "...")


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"
