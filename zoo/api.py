"""The public functions behind the CLI; each returns plain data (cards, infos) for the caller to render."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zoo.card import ModelCard
from zoo.catalog import load_registry
from zoo.plugins import PluginInfo, get_host
from zoo.registries import Registry

__all__ = ["registry", "list_models", "get_card", "list_plugins"]


def registry(extra: Sequence[str | Path] = ()) -> Registry:
    """The merged registry: built-in, plugins, ``$ZOO_HOME/registry.d``, ``$ZOO_REGISTRY``, ``extra``."""
    return load_registry(extra)


def list_models(
    pattern: str | None = None,
    *,
    modality: str | None = None,
    task: str | None = None,
    source: str | None = None,
    tag: str | None = None,
    plugin: str | None = None,
    max_params: int | str | None = None,
    sort: str = "name",
    registry_files: Sequence[str | Path] = (),
) -> list[ModelCard]:
    """Cards matching the filters (see :meth:`zoo.registries.Registry.select`), offline and fast."""
    return registry(registry_files).select(
        pattern, modality=modality, task=task, source=source, tag=tag, plugin=plugin,
        max_params=max_params, sort=sort,
    )


def get_card(name: str, *, registry_files: Sequence[str | Path] = ()) -> ModelCard:
    """The card of one model; an unknown name raises :class:`zoo.UnknownModelError` with suggestions.

    ``PREFIX:REF`` (``hf:ORG/NAME``) is a finder's model: its card comes from the registry when it
    was derived before, else the finder derives and saves it (see :func:`zoo.pulling.resolve_card`)."""
    from zoo.pulling import resolve_card

    return resolve_card(name, registry_files)


def list_plugins() -> list[PluginInfo]:
    """Every plugin zoo found: version, hooks, origin (built-in / entry point) and status. The
    plugins' model entries are checked first (the registry without user files), so a plugin whose
    entry was dropped for an invalid field is listed as broken, with why."""
    load_registry(user_files=False)
    return get_host().plugins()
