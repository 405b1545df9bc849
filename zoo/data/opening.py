"""Opening a dataset: find the format that reads it, load, then run the core checks.

Which format reads a path: the registered formats are asked ``detect(data)`` in this order, and
the first that says yes loads it:

1. formats from plugins (third-party or registered in-process), by name;
2. zoo's built-in formats (``csv``, ``digits``, ``folder``, ``jsonl``), by name.

So a plugin can take over any input zoo itself would read (its own ``.csv`` dialect, say) without
renaming anything, and zoo's formats are the fallback. Two plugins that both claim a path go by
name; ``format="name"`` skips detection and names the format outright.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from zoo.data.checks import check_dataset
from zoo.data.dataset import MODALITIES, Dataset
from zoo.errors import InputError, PluginError
from zoo.plugins import DEFAULT_PLUGINS, Contribution, PluginHost, get_host

__all__ = ["open_dataset", "format_order", "pick_format", "check_modality"]


#: What data is asked for as: the modality of the model that reads it. A format may answer with
#: data of another modality (``MODALITIES``: sounds) that a front end turns into this one.
REQUESTED = ("image", "text")


def check_modality(modality: str) -> None:
    if modality not in REQUESTED:
        raise InputError(f"unknown modality {modality!r}; use one of {', '.join(REQUESTED)} (the model's: sounds "
                         f"are read for image models through a front end)")


def format_order(host: PluginHost | None = None) -> list[tuple[str, Contribution]]:
    """The registered dataset formats in the order they are tried: plugins' first, then built-ins."""
    formats = (host or get_host()).dataset_formats()
    return sorted(formats.items(), key=lambda item: (item[1].plugin in DEFAULT_PLUGINS, item[0]))


def pick_format(data: str | Path, format: str | None = None,
                host: PluginHost | None = None) -> tuple[str, Contribution]:
    """(name, contribution) of the format that reads ``data``; InputError naming what was tried."""
    host = host or get_host()
    order = format_order(host)
    if format is not None:
        for name, contribution in order:
            if name == format:
                return name, contribution
        raise InputError(f"no dataset format named {format!r}; the formats are "
                         f"{', '.join(name for name, _ in order)}")
    for name, contribution in order:
        try:
            if contribution.value.detect(data):
                return name, contribution
        except Exception as exc:
            if contribution.plugin in DEFAULT_PLUGINS:
                raise  # zoo's own formats never raise in detect: that is a bug to see
            host.mark_broken(contribution.plugin, f"raised in dataset format {name!r}'s detect: "
                                                  f"{type(exc).__name__}: {exc}")
    tried = ", ".join(name for name, _ in order)
    missing = "" if str(data) == "digits" or Path(data).exists() else " (no such file or folder)"
    raise InputError(
        f"no dataset format can read {str(data)!r}{missing}; tried {tried}. Give a folder with one "
        f"subfolder of images per class, a .csv or .jsonl manifest, or 'digits' for the demo")


def open_dataset(data: str | Path, *, modality: str, classes: Sequence[str] | None = None,
                 format: str | None = None) -> Dataset:
    """Load ``data`` with the format that detects it and check every example.

    The result's ``examples`` are the usable ones, relabelled into ``classes`` when given (in that
    order) or into the sorted label names found; ``problems`` lists every bad row, file and label
    (a label outside ``classes`` included). Problems do not raise here: the caller decides
    (``make_splits`` raises unless ``skip_bad``). Raises :class:`InputError` when no format reads
    ``data`` or the input is unusable as a whole.
    """
    return _open(data, modality=modality, classes=classes, format=format)


def _open(data: str | Path, *, modality: str, classes: Sequence[str] | None, format: str | None,
          known_as: str = "the given classes") -> Dataset:
    check_modality(modality)
    name, contribution = pick_format(data, format)
    raw = contribution.value.load(data, modality)
    culprit = f"dataset format {name!r} (plugin {contribution.plugin!r})"
    if not isinstance(raw, Dataset):
        raise PluginError(f"{culprit} returned a {type(raw).__name__}, not a zoo.data.Dataset")
    if raw.modality != modality and not _bridged(raw.modality, modality):
        if raw.modality in MODALITIES:  # the data is what it is: the model cannot read it
            raise InputError(f"{data}: {raw.modality} data (read by {culprit}), which a model taking {modality} "
                             f"inputs cannot read: no front end turns {raw.modality} into {modality}; choose an "
                             f"image model (zoo list --modality image)")
        raise PluginError(f"{culprit} was asked for {modality} data and returned {raw.modality!r} data")
    checked = check_dataset(raw, raw.modality, classes, known_as=known_as)
    if raw.test is not None:
        if not isinstance(raw.test, Dataset) or raw.test.modality != raw.modality:
            raise PluginError(f"{culprit} gave a test set that is not a {raw.modality} zoo.data.Dataset")
        test = check_dataset(raw.test, raw.modality, checked.classes, known_as="the training classes")
        checked = replace(checked, test=test)
    return checked


def _bridged(data: str, model: str) -> bool:
    from zoo.frontend import bridges  # imported here: zoo.frontend loads the plugin host

    return bridges(data, model)
