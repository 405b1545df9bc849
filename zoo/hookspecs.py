"""The hooks a zoo plugin can implement. Each receives a ``register`` callback: the core validates
what a plugin gives, rejects duplicates naming both plugins, and records which plugin gave what."""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_sources(register: Callable[[Any], None]) -> None:
    """Register sources, where a model's files come from: ``register(source)`` with an object
    that has a ``name`` (the card's ``source.type``) and ``fields`` (a dict of ``zoo.Field``)."""


@hookspec
def register_adapters(register: Callable[[Any], None]) -> None:
    """Register adapters, which turn fetched files into a backbone: ``register(adapter)`` with an
    object that has a ``name`` (the card's ``adapter.type``) and ``fields`` (a dict of ``zoo.Field``)."""


@hookspec
def register_models(register: Callable[[Any], None]) -> None:
    """Contribute registry entries: ``register(entries)`` with TOML text, a ``pathlib.Path`` to a
    TOML file, or a dict of model name -> table; validated like the built-in registry.toml."""


@hookspec
def register_dataset_formats(register: Callable[[Any], None]) -> None:
    """Register dataset formats for ``zoo finetune --data``: ``register(fmt)`` with an object that has
    a ``name``, ``detect(path) -> bool`` and ``load(path, modality) -> zoo.data.Dataset``."""


@hookspec
def register_finders(register: Callable[[Any], None]) -> None:
    """Register finders, which derive a card for a model named ``PREFIX:REF`` that no registry has:
    ``register(finder)`` with an object that has a ``prefix`` (e.g. ``hf``) and
    ``find(ref, cache) -> str`` returning registry TOML text for exactly one model (named REF), and
    optionally ``serves(card, ref) -> bool``: whether a registry card named REF is that model, and
    ``check(ref)``: raise a ``zoo.ZooError`` for a REF that cannot name a model, before zoo reads
    or writes anything for it."""


@hookspec
def register_front_ends(register: Callable[[Any], None]) -> None:
    """Register front ends, which let a backbone of one modality read data of another (a sound as
    a log-mel spectrogram image): ``register(front_end)`` with an object that has a ``name``, the
    ``modality`` it reads, the ``target`` modality it produces, ``suffixes`` (the file types it
    reads), ``resolve(params, spec) -> dict`` (every parameter, declared), ``array(item, spec,
    augment=None) -> CHW float32 numpy array`` (numpy only: the torch-free runtime repeats it) and
    ``problem(item) -> str | None`` (why an item is unusable); optionally ``baseline(items, spec)
    -> (name, feature matrix)`` for the report's simple baseline. See ``zoo.frontend``."""


@hookspec
def register_tasks(register: Callable[[Any], None]) -> None:
    """Register tasks, the kinds of output a run learns (classification, regression, ...):
    ``register(task)`` with an object fulfilling ``zoo.Task`` (``zoo.tasks.contract``): a ``name``,
    its ``metrics``, how it reads targets from a dataset, its head and loss, its cross-validated
    frozen head, evaluation, baseline, report lines and plots, and the output its export ends in."""
