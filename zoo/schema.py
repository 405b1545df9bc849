"""Strict reading of TOML tables: types checked, unknown keys rejected, every error located.

The core and the plugins share this module: a plugin declares the fields of its source or adapter
as :class:`Field` objects, and the core checks a card's ``source`` / ``adapter`` table against them
with the same messages it uses for its own fields.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.errors import RegistryError

__all__ = ["Field", "Location", "TableReader", "check_type", "check_fields", "describe_type", "STATE_DICT_FIELDS"]


@dataclass(frozen=True)
class Field:
    """One declared key of a plugin-owned table (a card's ``source`` or ``adapter``).

    ``type`` is a plain annotation: ``str``, ``int``, ``float``, ``bool``, ``list[str]``,
    ``list[list[str]]``, ``dict[str, str]``... ``float`` accepts integers too.
    """

    type: Any
    required: bool = False
    help: str = ""


@dataclass(frozen=True)
class Location:
    """Where a table lives: the file (or plugin) and the model, for error messages."""

    file: str
    model: str | None = None

    def error(self, key: str | None, problem: str, hint: str = "") -> RegistryError:
        where = self.file
        if self.model is not None:
            where += f": model {self.model!r}"
        if key:
            where += f", key {key!r}"
        message = f"{where}: {problem}"
        if hint:
            message += f". {hint}"
        return RegistryError(message)


def describe_type(annotation: Any) -> str:
    """A human name for an annotation: 'a string', 'a list of strings'..."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is list:
        inner = describe_type(args[0]) if args else "values"
        return f"a list of {_plural(inner)}"
    if origin is tuple:
        return f"a list of {len(args)} values" if args and args[-1] is not Ellipsis else "a list"
    if origin in (dict, Mapping):
        return f"a table of {_plural(describe_type(args[1]))}" if args else "a table"
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        dict: "a table",
        list: "a list",
    }.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(phrase: str) -> str:
    for article in ("a ", "an "):
        if phrase.startswith(article):
            phrase = phrase[len(article) :]
    if phrase == "true or false":
        return "booleans"
    if phrase.startswith("list of"):
        return "lists of" + phrase[len("list of") :]
    if phrase.startswith("table of"):
        return "tables of" + phrase[len("table of") :]
    return phrase + "s"


def check_type(value: Any, annotation: Any) -> bool:
    """Whether a TOML value matches a plain annotation (bool is never an int or a float)."""
    return _checker(annotation)(value)


@functools.lru_cache(maxsize=None)
def _checker(annotation: Any) -> Callable[[Any], bool]:
    """``annotation`` compiled once into a test of a value: the catalogue has thousands of cards,
    and interpreting the annotation again for every value was most of ``zoo list``'s time."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return lambda value: True
    if origin in (typing.Union, types.UnionType):
        options = tuple(_checker(a) for a in args)
        return lambda value: any(check(value) for check in options)
    if origin is list:
        if not args:
            return lambda value: isinstance(value, list)
        item = _checker(args[0])
        return lambda value: isinstance(value, list) and all(item(v) for v in value)
    if origin is tuple:
        if args and args[-1] is Ellipsis:
            item = _checker(args[0])
            return lambda value: isinstance(value, list) and all(item(v) for v in value)
        items = tuple(_checker(a) for a in args)
        return lambda value: (isinstance(value, list) and len(value) == len(items)
                              and all(check(v) for check, v in zip(items, value)))
    if origin in (dict, Mapping):
        if not args:
            return lambda value: isinstance(value, dict)
        key, item = _checker(args[0]), _checker(args[1])
        return lambda value: isinstance(value, dict) and all(key(k) and item(v) for k, v in value.items())
    if annotation is bool:
        return lambda value: isinstance(value, bool)
    if annotation is int:
        return lambda value: isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return lambda value: isinstance(value, str)
    if isinstance(annotation, type):
        return lambda value: isinstance(value, annotation)
    raise TypeError(f"unsupported annotation in a zoo Field: {annotation!r}")


class TableReader:
    """Take typed keys out of one table; :meth:`finish` rejects whatever was not taken."""

    def __init__(self, table: Any, location: Location, prefix: str = "") -> None:
        self.location = location
        self.prefix = prefix
        if not isinstance(table, dict):
            raise location.error(prefix or None, f"expected a table, got {_show(table)}")
        self._table = table
        self._taken: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def take(self, name: str, annotation: Any, *, required: bool = False, default: Any = None) -> Any:
        self._taken.add(name)
        if name not in self._table:
            if required:
                raise self.location.error(
                    self.key(name),
                    "required field is missing",
                    f"Add `{name} = ...` ({describe_type(annotation)}) to the entry",
                )
            return default
        value = self._table[name]
        if not check_type(value, annotation):
            raise self.location.error(
                self.key(name), f"expected {describe_type(annotation)}, got {_show(value)}"
            )
        return value

    def table(self, name: str, *, required: bool = False) -> TableReader | None:
        value = self.take(name, dict, required=required)
        return None if value is None else TableReader(value, self.location, self.key(name))

    def rest(self) -> dict[str, Any]:
        """The keys not taken yet (for plugin-owned fields checked elsewhere)."""
        return {k: v for k, v in self._table.items() if k not in self._taken}

    def finish(self, known: typing.Iterable[str] = ()) -> None:
        allowed = set(self._taken) | set(known)
        for name in self._table:
            if name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = f"Did you mean {close[0]!r}?" if close else (
                    f"Known keys: {', '.join(sorted(allowed))}" if allowed else ""
                )
                raise self.location.error(self.key(name), "unknown key", hint)


def check_fields(
    options: Mapping[str, Any], fields: Mapping[str, Field], location: Location, prefix: str
) -> None:
    """Validate a plugin-owned table against the plugin's declared fields."""
    reader = TableReader(dict(options), location, prefix)
    for name, field in fields.items():
        reader.take(name, field.type, required=field.required)
    reader.finish(known=("type",))


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "table"}
    return f"{kind.get(type(value), type(value).__name__)} {text}"


#: Fields every state-dict adapter accepts, for weights published under other key names:
#: ``rename`` rules are applied first; ``remap = "positional"`` is the last resort, pairing tensors
#: in order with a shape check on every one.
STATE_DICT_FIELDS: dict[str, Field] = {
    "rename": Field(list[list[str]], help='regex rename rules, [["^_conv_stem\\\\.", "conv_stem."], ...]'),
    "remap": Field(str, help='"positional": pair tensors by order, checking every shape'),
}
