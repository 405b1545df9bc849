"""Loading weight files safely and fitting them onto an architecture.

Weights published under other key names are common (a TF port, a re-implementation): a card's
adapter may give regex ``rename`` rules, and, as a last resort, ``remap = "positional"``, which
pairs tensors in order and checks every shape. Nothing is loaded that does not fit exactly.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import LoadError
from zoo.fetched import Fetched

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["read_state_dict", "fit_state_dict", "load_into", "weights_file"]

_WRAPPERS = ("state_dict", "model", "model_state_dict", "module")


_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def weights_file(fetched: Fetched) -> Path:
    """The weights among a model's files: safetensors first, then pickles."""
    for suffix in _WEIGHT_SUFFIXES:
        found = fetched.find(suffix)
        if found:
            return found[0].path
    raise LoadError(f"model {fetched.model!r}: no weights file among {', '.join(f.name for f in fetched.files)} "
                    f"(looked for {', '.join(_WEIGHT_SUFFIXES)})")


def _culprit(exc: BaseException) -> str:
    """What torch's refusal names (``Unsupported global: GLOBAL os.system``), without its advice
    to load with ``weights_only=False``, which is exactly the code execution zoo refuses."""
    import re

    found = re.search(r"Unsupported (?:global|operand)[^.\n]*", str(exc))
    return f" ({found.group(0).strip()})" if found else ""


def _fix(path: Path, model: str) -> str:
    """How to get a good copy: zoo's cache can pull it again; a local or package file is the user's."""
    from zoo.settings import zoo_home

    try:
        path.resolve().relative_to((zoo_home() / "models").resolve())
    except ValueError:
        return ("The file is not zoo's copy (a local or package source): replace it with a good one, or fix "
                "the card's path")
    return f"Pull it again with `zoo pull --force {model}`"


def read_state_dict(path: Path, *, model: str) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a pickle read with ``weights_only=True``.

    A pickle that needs more than tensors and plain containers would run code when loaded; it is
    refused with an explanation instead.
    """
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise LoadError(f"model {model!r}: cannot read {path}: {exc}. {_fix(path, model)}") from None
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise LoadError(
            f"model {model!r}: refused to load {path}: the pickle needs more than tensors, and loading "
            f"it would run arbitrary code{_culprit(exc)}. Ask the publisher for a safetensors file, or "
            f"convert it yourself after reviewing its source"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise LoadError(f"model {model!r}: cannot read weights file {path}: {exc}. {_fix(path, model)}") from None
    for _ in range(2):  # training checkpoints wrap the weights: {"state_dict": {...}, "epoch": 3}
        if isinstance(data, Mapping):
            inner = [data[k] for k in _WRAPPERS if isinstance(data.get(k), Mapping)]
            if inner and not any(isinstance(v, torch.Tensor) for v in data.values()):
                data = inner[0]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise LoadError(f"model {model!r}: {path} does not hold a state dict (a mapping of names to tensors)")
    return dict(data)


def fit_state_dict(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    *,
    model: str,
    rename: Sequence[Sequence[str]] = (),
    positional: bool = False,
) -> dict[str, torch.Tensor]:
    """Map ``source`` onto the keys of ``target`` (an architecture's own state dict).

    ``rename`` rules ([pattern, replacement], applied in order with ``re.sub``) come first; when
    the keys still do not line up and ``positional`` is set, tensors are paired by order. Every
    tensor's shape is checked either way; any mismatch raises :class:`LoadError` listing it.
    """
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        for pattern, replacement in rename:
            key = re.sub(pattern, replacement, key)
        renamed[key] = tensor

    missing = [k for k in target if k not in renamed]
    unexpected = [k for k in renamed if k not in target]
    if not missing and not unexpected:
        _check_shapes(((k, renamed[k], k, target[k]) for k in target), model)
        return {k: renamed[k] for k in target}
    if positional:
        if len(renamed) != len(target):
            raise LoadError(
                f"model {model!r}: positional remap needs as many tensors as the architecture has: "
                f"the file has {len(renamed)}, the architecture {len(target)}"
            )
        pairs = list(zip(renamed.items(), target.items()))
        _check_shapes(((sk, st, tk, tt) for (sk, st), (tk, tt) in pairs), model)
        return {tk: st for (_, st), (tk, _) in pairs}
    raise LoadError(
        f"model {model!r}: the weights' keys do not match the architecture: "
        f"{len(missing)} missing (e.g. {', '.join(missing[:3])}), "
        f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])}). "
        f"Add `rename = [[pattern, replacement], ...]` rules to the card's adapter, or "
        f'`remap = "positional"` when the order matches'
    )


def _check_shapes(pairs, model: str) -> None:  # noqa: ANN001
    wrong = [f"{sk} {tuple(st.shape)} -> {tk} {tuple(tt.shape)}"
             for sk, st, tk, tt in pairs if st.shape != tt.shape]
    if wrong:
        raise LoadError(f"model {model!r}: {len(wrong)} tensors have the wrong shape, first: "
                        f"{'; '.join(wrong[:3])}. The card's architecture does not fit these weights")


def load_into(module: torch.nn.Module, path: Path, *, model: str, options: Mapping[str, Any]) -> None:
    """Read ``path`` and load it into ``module`` using the adapter options ``rename`` / ``remap``."""
    remap = options.get("remap")
    if remap not in (None, "positional"):
        raise LoadError(f"model {model!r}: unknown remap {remap!r}; the only remap is \"positional\"")
    fitted = fit_state_dict(read_state_dict(path, model=model), module.state_dict(), model=model,
                            rename=options.get("rename", ()), positional=remap == "positional")
    module.load_state_dict(fitted, strict=True)
