"""The registry as a user sees it: built-in entries, then plugins', then user files, checked
against the sources and adapters the loaded plugins declare.

This is the one place where the registry layer and the plugin layer meet.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.card import ModelCard, Origin, frozen_map
from zoo.errors import RegistryError
from zoo.plugins import Contribution, PluginHost, get_host
from zoo.registries import (
    Registry,
    builtin_registry_path,
    card_from_table,
    merge_cards,
    parse_card,
    parse_models,
    read_catalogue,
    parse_registry_file,
    parse_registry_text,
)
from zoo.schema import Location, check_fields
from zoo.settings import user_registry_paths

__all__ = ["load_registry", "registry_files"]

_CACHE: dict[tuple, Registry] = {}


def registry_files(extra: Sequence[str | Path] = ()) -> list[Path]:
    """User registry files in merge order: registry.d, ZOO_REGISTRY, then ``extra`` (--registry)."""
    return user_registry_paths() + [Path(p).expanduser() for p in extra]


def load_registry(
    extra: Sequence[str | Path] = (), *, host: PluginHost | None = None, user_files: bool = True
) -> Registry:
    """Build the merged, validated registry.

    ``extra`` are further user files (the CLI's ``--registry``). Results are cached per process for
    the same files, environment and plugin host.
    """
    host = host or get_host()
    files = registry_files(extra) if user_files else [Path(p) for p in extra]
    key = (id(host), host.generation, tuple(files), os.environ.get("ZOO_HOME"), _mtimes(files))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached

    builtin = builtin_registry_path()
    cards = parse_registry_file(builtin, Origin("builtin", "zoo", builtin))
    unchecked: dict[str, Callable[[str], ModelCard]] = {}
    for contribution in host.model_contributions():
        cards.extend(_plugin_cards(host, contribution, unchecked))
    for path in files:
        cards.extend(parse_registry_file(path, Origin("user", str(path), path)))
    merged = merge_cards(cards)
    unavailable = _check_components(merged, host, skip=unchecked)
    registry = Registry(merged, unavailable, unchecked)
    _CACHE[key] = registry
    return registry


def _mtimes(files: Iterable[Path]) -> tuple:
    stamps = []
    for path in files:
        try:
            stamps.append(path.stat().st_mtime_ns)
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def _plugin_cards(host: PluginHost, contribution: Contribution,
                  unchecked: dict[str, Callable[[str], ModelCard]]) -> list[ModelCard]:
    """Parse one plugin's entries; invalid ones mark that plugin broken instead of failing zoo.

    A generated catalogue (a ``.json`` path, :func:`zoo.registries.read_catalogue`) is built
    without checks; ``unchecked`` gets, per card, the check that runs when the card is used."""
    value = contribution.value
    path = value if isinstance(value, Path) else None
    origin = Origin("plugin", contribution.plugin, path)
    label = f"plugin {contribution.plugin!r}" + (f" ({path})" if path else "")
    try:
        if isinstance(value, Path) and value.suffix == ".json":
            models = read_catalogue(value, origin)
            cards = [card_from_table(name, table, origin) for name, table in models.items()]
            unchecked.update(dict.fromkeys(models, functools.partial(_checked, host, models, origin, label)))
            return cards
        if isinstance(value, Path):
            return parse_registry_text(value.read_text(encoding="utf-8"), origin, label)
        if isinstance(value, str):
            return parse_registry_text(value, origin, label)
        return parse_models(value, origin, label)
    except (RegistryError, OSError) as exc:
        host.mark_broken(contribution.plugin, f"gave invalid model entries: {exc}")
        return []


def _checked(host: PluginHost, models: Mapping[str, Any], origin: Origin, label: str, name: str) -> ModelCard:
    """A catalogue card checked as every other card is: its fields, then its plugin-owned ones."""
    card = parse_card(name, models[name], origin, Location(label, name))
    _check_card(card, host, {})
    return card


def _check_components(merged: dict[str, ModelCard], host: PluginHost,
                      skip: Mapping[str, Any] = frozen_map()) -> Mapping[str, str]:
    """Check plugin-owned fields; return the models whose source or adapter no plugin provides.

    A card a plugin contributed with a bad field marks that plugin broken and leaves the registry
    (``zoo plugins`` says why); every other command goes on. A user file's bad field is an error
    naming the file and the model: the user can fix it."""
    unavailable: dict[str, str] = {}
    for card in list(merged.values()):
        try:
            _check_card(card, host, unavailable, fields=card.name not in skip)
        except RegistryError as exc:
            if card.origin.kind != "plugin":
                raise
            host.mark_broken(card.origin.name, f"gave an invalid model entry: {exc}")
            del merged[card.name]
            unavailable.pop(card.name, None)
    return unavailable


def _check_card(card: ModelCard, host: PluginHost, unavailable: dict[str, str], *, fields: bool = True) -> None:
    """One card's source and adapter against the loaded plugins' (``unavailable`` collects the
    models no plugin can serve); a bad field raises :class:`RegistryError` (``fields=False``:
    only whether a plugin serves it, for a catalogue card checked later)."""
    location = Location(str(card.origin.path or card.origin), card.name)
    for key, ref, table in (("source", card.source, host.sources()),
                            ("adapter", card.adapter, host.adapters())):
        provided = table.get(ref.type)
        if provided is None:
            known = ", ".join(sorted(table)) or "none"
            unavailable.setdefault(
                card.name,
                f"no loaded plugin provides {key} type {ref.type!r} (loaded: {known}); "
                f"run `zoo plugins` to see which plugins are broken or disabled",
            )
            continue
        if fields:
            check_fields(ref.options, provided.value.fields, location, key)


def clear_cache() -> None:
    """Forget cached registries (tests that rewrite files within one mtime tick)."""
    _CACHE.clear()
