"""JSON that refuses an object with a key twice, and records (JSON objects zoo wrote) checked key by key.

The JSON specification leaves duplicate keys to the reader, and Python's ``json`` keeps the last
one: ``{"label": "a", "label": "b"}`` reads as ``{"label": "b"}`` with no word. For a user's
manifest row that silently trains the wrong label; for a file zoo wrote it means the file was
edited or damaged. The stdlib's ``object_pairs_hook`` sees every pair, so no other library is
needed. Stdlib only (the data formats load with every plugin host).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["DuplicateKeyError", "loads", "read_record", "check_record"]


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


def read_record(text: str | bytes, required: Sequence[str] = (),
                checks: Mapping[str, Callable[[Any], bool]] | None = None) -> dict[str, Any]:
    """A JSON object read with :func:`loads` and passed through :func:`check_record`. Anything
    else raises ``ValueError`` saying why in a few words ("not valid JSON: ...", "a JSON list,
    not an object"), for the caller's one line naming the file and the fix."""
    try:
        data = loads(text)
    except DuplicateKeyError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    return check_record(data, required, checks or {})


def check_record(data: dict[str, Any], required: Sequence[str],
                 checks: Mapping[str, Callable[[Any], bool]]) -> dict[str, Any]:
    """``data`` when it holds every ``required`` key and its values pass ``checks`` (key ->
    predicate, for the keys present); else ``ValueError`` ("dim missing", 'dim is "4"')."""
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing")
    wrong = [key for key, ok in checks.items() if key in data and not ok(data[key])]
    if wrong:
        raise ValueError("; ".join(f"{key} is {json.dumps(data[key])[:60]}" for key in wrong))
    return data
