"""Front ends: data of one modality read by a backbone of another (a sound as a spectrogram image).

A front end is a plugin component (the ``register_front_ends`` hook): it declares the modality it
reads and the one it produces, resolves its parameters against the backbone's input spec, and
turns one item into the array the backbone takes, in numpy alone, so that training, the frozen
pass, the exported model's torch-free runtime and the tests all run the very same code.

The core never names a front end. When the data's modality (what its dataset format read) is not
the card's, :func:`bridge` finds the one front end that reads the first and produces the second and
returns the card with ``input.front_end`` set to a :class:`zoo.card.FrontEndSpec`: every parameter
resolved, recorded by the run, keyed into the feature cache and written into the ONNX metadata.
From there the backbone's ``preprocess``, the loaders and the runtime call :func:`batch`.

Stdlib only at import (``zoo list`` loads the plugin host, and the runtime must not need torch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from zoo.card import FrontEndSpec, InputSpec, ModelCard, _frozen_params
from zoo.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from zoo.plugins import PluginHost

__all__ = ["bridge", "bridges", "with_front_end", "front_end_of", "batch", "array", "problem_check", "suffixes",
           "declared"]


def _host(host: PluginHost | None) -> PluginHost:
    from zoo.plugins import get_host

    return host or get_host()


def _disabled_hint() -> str:
    return ("; is the plugin that reads it installed and enabled (ZOO_DISABLE_PLUGINS, `zoo plugins`)? "
            "The audio front end is plugin zoo_audio")


def _reading(modality: str, target: str | None, host: PluginHost | None) -> list[tuple[str, Any]]:
    return [(name, c.value) for name, c in sorted(_host(host).front_ends().items())
            if c.value.modality == modality and (target is None or c.value.target == target)]


def bridge(card: ModelCard, modality: str, params: Mapping[str, Any] | None = None, *,
           host: PluginHost | None = None) -> ModelCard:
    """``card`` reading ``modality`` data through the front end that turns it into the card's own.

    ``params`` are the user's (``{"clip_seconds": 2}``; ``name`` picks a front end where several
    read the modality), or a recorded declaration (``FrontEndSpec.to_dict()``: a resumed run's, a
    table's), checked again; the front end fills in the rest for this backbone's input. A card of
    that modality already is returned as it is (with no params to apply).
    """
    params = dict(params or {})
    if {"name", "modality", "params"} <= set(params):  # a declaration: its name and every parameter
        params = {"name": params["name"], **params["params"]}
    if modality == card.modality:
        if params:
            raise InputError(f"model {card.name!r} reads {modality} data itself: front-end settings "
                             f"({', '.join(sorted(params))}) do not apply; leave them out")
        return card
    wanted = params.pop("name", None)
    found = _reading(modality, card.modality, host)
    if wanted is not None:
        found = [(name, fe) for name, fe in found if name == wanted]
    if not found:
        what = f"front end {wanted!r}" if wanted else "front end"
        raise InputError(f"model {card.name!r} takes {card.modality} inputs and the data is {modality}, but no "
                         f"{what} turns {modality} into {card.modality}{_disabled_hint()}")
    if len(found) > 1:
        raise InputError(f"several front ends read {modality} for {card.modality} models "
                         f"({', '.join(n for n, _ in found)}); name one with --front-end name=NAME")
    name, front_end = found[0]
    resolved = front_end.resolve(params, card.input)
    return with_front_end(card, FrontEndSpec(name, modality, _frozen_params(resolved)))


def with_front_end(card: ModelCard, spec: FrontEndSpec | Mapping[str, Any] | None) -> ModelCard:
    """``card`` with a recorded front end (a run's ``config.json``), or unchanged for None."""
    if spec is None:
        return card
    if not isinstance(spec, FrontEndSpec):
        spec = FrontEndSpec.from_dict(spec)
    return replace(card, input=replace(card.input, front_end=spec))


def declared(card: ModelCard) -> dict[str, Any] | None:
    """The card's front end as plain data (what a run records), or None."""
    spec = card.input.front_end
    return spec.to_dict() if spec is not None else None


def front_end_of(spec: FrontEndSpec, host: PluginHost | None = None) -> Any:
    """The registered front end a spec names; an error naming it when its plugin is not here."""
    contribution = _host(host).front_ends().get(spec.name)
    if contribution is None:
        raise InputError(f"front end {spec.name!r} (which reads {spec.modality}) is not registered{_disabled_hint()}")
    return contribution.value


def array(item: Any, spec: InputSpec, *, augment: tuple[str, int] | None = None) -> np.ndarray:
    """One item through ``spec``'s front end: a CHW float32 array at the backbone's input size.
    ``augment=(policy, seed)``: the front end's training augmentation, drawn from ``seed`` alone."""
    assert spec.front_end is not None
    return front_end_of(spec.front_end).array(item, spec, augment=augment)


def batch(items: Sequence[Any], spec: InputSpec) -> np.ndarray:
    """A float32 NCHW batch of ``items`` through ``spec``'s front end."""
    import numpy as np

    if isinstance(items, (str, bytes)) or not len(items):
        raise InputError("give a non-empty list of inputs")
    front_end = front_end_of(spec.front_end)  # type: ignore[arg-type]
    return np.stack([front_end.array(item, spec) for item in items])


def problem_check(modality: str, host: PluginHost | None = None) -> Callable[[Any], str | None]:
    """Why one ``modality`` item is unusable, or None: the check of the front end that reads it."""
    found = _reading(modality, None, host)
    if not found:
        raise InputError(f"no front end reads {modality} data{_disabled_hint()}")
    return found[0][1].problem


def bridges(data: str, model: str, host: PluginHost | None = None) -> bool:
    """Whether a front end reads ``data`` for ``model`` inputs (a sound for an image backbone)."""
    return bool(_reading(data, model, host))


def suffixes(modality: str, host: PluginHost | None = None) -> tuple[str, ...]:
    """The file suffixes the front ends reading ``modality`` take (for finding inputs in a folder)."""
    return tuple(sorted({s for _, fe in _reading(modality, None, host) for s in getattr(fe, "suffixes", ())}))


def generated(spec: InputSpec, count: int, seed: int) -> list[Any]:
    """Inputs the front end makes when there is no data (for validating an exported graph)."""
    front_end = front_end_of(spec.front_end)  # type: ignore[arg-type]
    make = getattr(front_end, "generated", None)
    if not callable(make):
        raise InputError(f"front end {spec.front_end.name!r} cannot make inputs of its own; "  # type: ignore[union-attr]
                         f"give data to validate with")
    return list(make(spec, count, seed))


def baseline(items: Sequence[Any], spec: InputSpec) -> tuple[str, np.ndarray] | None:
    """The front end's simple-baseline features of ``items`` (name, matrix), or None without one."""
    front_end = front_end_of(spec.front_end)  # type: ignore[arg-type]
    make = getattr(front_end, "baseline", None)
    return make(items, spec) if callable(make) else None
