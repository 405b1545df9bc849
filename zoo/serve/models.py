"""The models a server holds: which files, under which names and versions, opened once.

``zoo serve`` takes ``PATH``, ``NAME=PATH`` or ``NAME/VERSION=PATH``. A PATH is an ONNX file that
``zoo export`` wrote (a run, a few-shot or zero-shot classifier, an embedding model, sounds through a
front end: whatever ``zoo predict`` runs), or a run or few-shot folder holding its ``model.onnx``.
The default name is the folder's for ``FOLDER/model.onnx``, else the file's stem; the default version
is ``1``. Several versions of one name may be served; a request without a version gets the highest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import InputError
from zoo.modelinfo import KINDS, ModelInfo
from zoo.modelname import DEFAULT_FILES, NAME_PATTERN, served_name
from zoo.runtime import OnnxModel, open_model
from zoo.serve.errors import not_found
from zoo.serve.integrity import FileGuard, signature

__all__ = ["ModelSpec", "ServedModel", "ModelSet", "parse_spec", "load_models", "SESSION_CONFIG"]

#: onnxruntime's threads sleep between batches instead of spinning: a server waits for requests
#: most of the time, and spinning threads take the cores the event loop and the other batches need
#: (on 2 cores, efficientnet_lite0 at batch 8 ran at 63 items/s with spinning off against 42 with
#: it on, beside other work).
SESSION_CONFIG = {"session.intra_op.allow_spinning": "0"}



@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: its file and the name and version it answers to."""

    path: Path
    name: str
    version: str = "1"


def _resolve(path: Path) -> Path:
    """The ONNX file a PATH names: the file itself, or a folder's model.onnx."""
    if path.is_dir():
        for candidate in DEFAULT_FILES:
            if (path / candidate).is_file():
                return path / candidate
        raise InputError(f"{path}: no model.onnx in this folder; export it first (`zoo export {path}`), "
                         f"then serve the folder or its model.onnx")
    if not path.exists():
        raise InputError(f"{path}: no such model file or folder; give an ONNX file that `zoo export` wrote, "
                         f"or a run or few-shot folder that holds one")
    return path


def parse_spec(argument: str) -> ModelSpec:
    """``PATH``, ``NAME=PATH`` or ``NAME/VERSION=PATH`` (a path that exists wins over a name)."""
    text = str(argument)
    label = None
    if "=" in text and not Path(text).exists():
        label, text = text.split("=", 1)
    path = _resolve(Path(text))
    if label is None:
        return ModelSpec(path, served_name(path))
    name, _, version = label.partition("/")
    version = version or "1"
    for what, value in (("name", name), ("version", version)):
        if not NAME_PATTERN.match(value):
            raise InputError(f"{argument}: the model {what} {value!r} may hold only letters, digits, '.', '_' and "
                             f"'-' (it is part of the URL), e.g. digits=runs/digits/model.onnx")
    return ModelSpec(path, name, version)


@dataclass
class ServedModel:
    """A model file opened in onnxruntime, with its name, version and the sha256 it was loaded with."""

    spec: ModelSpec
    model: OnnxModel
    guard: FileGuard
    loaded_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def path(self) -> Path:
        return self.spec.path

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    @property
    def sha256(self) -> str:
        return self.guard.sha256

    def describe(self) -> dict[str, Any]:
        """What ``GET /v2/models`` lists for it (and the page shows)."""
        info = self.info
        out: dict[str, Any] = {
            "name": self.name, "version": self.version, "kind": info.kind, "modality": info.modality,
            "precision": info.precision, "sha256": self.sha256, "path": str(self.path),
            "model": info.model, "inputs": list(info.inputs), "output": info.output, "labels": list(info.labels),
            "multi_label": info.source.get("thresholds") is not None, "state": self.state,
        }
        if self.guard.changed:
            out["reason"] = self.guard.changed
        return out

    @property
    def state(self) -> str:
        return "READY" if self.guard.changed is None else "UNAVAILABLE"


def open_served(spec: ModelSpec, *, provider: str | None = None, threads: int | None = None) -> ServedModel:
    """Hash, open and warm one model: a missing tokenizer or front end fails now, not per request."""
    guard = FileGuard.hashed(spec.path)
    model = open_model(spec.path, provider=provider, threads=threads, session_config=SESSION_CONFIG)
    if signature(spec.path) != guard.stat:  # replaced while it was being opened
        raise InputError(f"{spec.path}: the file changed while it was being loaded; wait for whatever writes it "
                         f"to finish and start again")
    if model.info.kind not in KINDS:
        raise InputError(f"{spec.path}: a {model.info.kind!r} model, and zoo serve runs classifiers, regressions, "
                         f"detectors, segmenters, instance segmenters and embedding models; upgrade zoo")
    if model.info.modality == "text":
        model.encode.tokenizer  # noqa: B018 - read and checked against its sha256 now
    elif model.info.preprocessing.get("front_end"):
        from zoo.card import FrontEndSpec
        from zoo.frontend import front_end_of

        front_end_of(FrontEndSpec.from_dict(model.info.preprocessing["front_end"]))
    return ServedModel(spec, model, guard)


class ModelSet:
    """Every served model, found by name and version."""

    def __init__(self, models: Sequence[ServedModel]) -> None:
        _check_unique([m.spec for m in models])
        self._lock = threading.Lock()
        self._models = {(served.name, served.version): served for served in models}

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._models})

    def versions(self, name: str) -> list[str]:
        return sorted((v for n, v in self._models if n == name), key=_version_key)

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model ``name`` at ``version`` (the highest when None); 404 naming what is served."""
        versions = self.versions(name)
        if not versions:
            raise not_found(f"no model named {name!r} here; served: {', '.join(self.names())} (GET /v2/models)")
        chosen = version if version is not None else versions[-1]
        served = self._models.get((name, chosen))
        if served is None:
            raise not_found(f"model {name!r} has no version {chosen!r}; served versions: {', '.join(versions)}")
        return served

    def replace(self, served: ServedModel) -> None:
        """Put a reloaded model in place of the one with its name and version."""
        with self._lock:
            self._models[(served.name, served.version)] = served


def _check_unique(specs: Sequence[ModelSpec]) -> None:
    seen: dict[tuple[str, str], Path] = {}
    for spec in specs:
        other = seen.setdefault((spec.name, spec.version), spec.path)
        if other is not spec.path:
            raise InputError(f"two models answer to {spec.name!r} version {spec.version}: {other} and {spec.path}; "
                             f"name them (NAME=PATH, or NAME/VERSION=PATH)")


def _version_key(version: str) -> tuple[int, int, str]:
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


def load_models(arguments: Sequence[str | ModelSpec], *, provider: str | None = None,
                threads: int | None = None) -> ModelSet:
    """Open every model given on the command line (or as specs); the first bad one is an InputError."""
    if not arguments:
        raise InputError("give at least one model to serve: an ONNX file from `zoo export`, or a run or "
                         "few-shot folder holding one")
    specs = [a if isinstance(a, ModelSpec) else parse_spec(a) for a in arguments]
    _check_unique(specs)  # before minutes of opening, not after
    return ModelSet([open_served(spec, provider=provider, threads=threads) for spec in specs])
