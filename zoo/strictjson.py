"""JSON that refuses an object with a key twice.

The JSON specification leaves duplicate keys to the reader, and Python's ``json`` keeps the last
one: ``{"label": "a", "label": "b"}`` reads as ``{"label": "b"}`` with no word. For a user's
manifest row that silently trains the wrong label; for a file zoo wrote it means the file was
edited or damaged. The stdlib's ``object_pairs_hook`` sees every pair, so no other library is
needed. Stdlib only (the data formats load with every plugin host).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DuplicateKeyError", "loads"]


class DuplicateKeyError(ValueError):
    """An object holds ``key`` more than once; ``str()`` says which, for a one-line message."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKeyError(key)
        found[key] = value
    return found


def loads(text: str | bytes) -> Any:
    """``json.loads`` for every object at any depth, refusing a repeated key with
    :class:`DuplicateKeyError` (a ``ValueError``, as ``json.JSONDecodeError`` is)."""
    return json.loads(text, object_pairs_hook=_unique)
