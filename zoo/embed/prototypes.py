"""``zoo fewshot``: a nearest-centroid (prototype) classifier on a backbone's embeddings, no training.

Each class's prototype is the mean of its support examples' L2-normalised embeddings, normalised
again; an input goes to the class whose prototype has the highest cosine similarity. Probabilities
are ``softmax(SCALE * cosine)``: they rank classes, they are not calibrated.

Zero-shot (:func:`zero_shot`), the prototypes are the label names' prompts embedded: by the
model itself for a text encoder, by the text tower of an image-text model (CLIP, SigLIP) for
images, whose scores are then the model's own: ``logit_scale * cosine + logit_bias`` from its
weights, a softmax over the labels for CLIP, a sigmoid per label for SigLIP.

A saved classifier is a small folder::

    fewshot.json     model, revision, embedder identity, input spec, classes, support counts and
                     data (path and content fingerprint), scale (and an image-text model's bias
                     and scoring)
    labels.json      class names, in the order of the outputs (as in a zoo finetune run)
    prototypes.npy   (classes, dim) float32, one unit-length row per class

As a torch module (:meth:`FewShot.to_module`) it is the backbone followed by a bias-free linear
layer whose weights are the prototypes, scaled by SCALE after normalising the embedding: logits
whose softmax are the probabilities above, ready for ONNX export.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.card import SCORINGS
from zoo.data.dataset import MODALITIES
from zoo.errors import InputError, ZooError
from zoo.prompts import TEMPLATES, check_templates, class_prompts, default_templates, parse_labels
from zoo.runtime import Prediction  # the same shape as `zoo predict` predictions: one class

__all__ = ["FewShot", "Prediction", "fewshot", "zero_shot", "parse_labels", "load_fewshot", "expand_inputs",
           "default_folder", "SCALE", "TEMPLATES"]

#: Softmax temperature on cosine similarities (as in cosine-classifier few-shot work: 10 to 30).
SCALE = 10.0
_KIND = "zoo-fewshot"
_VERSION = 1


class FewShot:
    """A prototype classifier; build it with :func:`fewshot`, reload it with :func:`load_fewshot`."""

    def __init__(self, *, model: str, revision: str, embedder: str, modality: str, input: dict[str, Any],
                 classes: Sequence[str], prototypes: Any, counts: Sequence[int], scale: float = SCALE,
                 support: dict[str, Any] | None = None, path: Path | None = None, engine: str = "auto",
                 registry_files: Sequence[str | Path] = (), weights: dict[str, str] | None = None,
                 bias: float = 0.0, scoring: str = "softmax") -> None:
        import numpy as np

        self.model, self.revision, self.embedder, self.modality = model, revision, embedder, modality
        self.weights = dict(weights or {})  # {file: sha256} of the pulled files the prototypes came from
        self.input = dict(input)
        self.classes = tuple(classes)
        self.prototypes = np.asarray(prototypes, dtype=np.float32)
        self.counts = tuple(int(c) for c in counts)
        self.scale = float(scale)
        self.bias = float(bias)  # added to every logit (SigLIP's logit bias; 0 otherwise)
        self.scoring = scoring  # "softmax" over the classes, or a "sigmoid" per class (SigLIP's)
        self.support = dict(support or {})  # where the examples came from: {"data", "fingerprint"}
        self.path = path
        self.engine = engine  # the frozen pass that embeds what it predicts (zoo.frozen.frozen_pass)
        self.registry_files = tuple(registry_files)  # where the model's card is, besides the user's own files
        self._backbone: Any = None
        if self.prototypes.shape[0] != len(self.classes):
            raise ZooError(f"{len(self.classes)} classes but {self.prototypes.shape[0]} prototypes")

    def __repr__(self) -> str:
        if self.zero_shot:
            return f"<FewShot {self.model}: {len(self.classes)} classes from their names (zero-shot)>"
        return f"<FewShot {self.model}: {len(self.classes)} classes from {sum(self.counts)} examples>"

    @property
    def zero_shot(self) -> bool:
        """Built from label names alone (:func:`zero_shot`), no labelled example."""
        return "zero_shot" in self.support

    # ----------------------------------------------------------------- building

    @classmethod
    def from_embeddings(cls, embeddings: Any, labels: Sequence[int], classes: Sequence[str], **info: Any) -> FewShot:
        """Prototypes from support embeddings (rows) and their class indices."""
        import numpy as np

        from zoo.embed.ingest import normalize

        vectors = normalize(embeddings)
        labels = np.asarray(labels)
        counts = [int((labels == c).sum()) for c in range(len(classes))]
        empty = [classes[c] for c, n in enumerate(counts) if n == 0]
        if empty:
            raise InputError(f"no support example for class{'es' if len(empty) > 1 else ''} "
                             f"{', '.join(map(repr, empty))}; give at least one per class")
        means = np.stack([vectors[labels == c].mean(axis=0) for c in range(len(classes))])
        return cls(classes=classes, prototypes=normalize(means), counts=counts, **info)

    # ----------------------------------------------------------------- predicting

    def logits(self, embeddings: Any) -> Any:
        """``scale * cosine + bias`` to each prototype, for rows of (unnormalised) embeddings."""
        from zoo.embed.ingest import normalize

        return self.scale * (normalize(embeddings) @ self.prototypes.T) + self.bias

    def probabilities(self, embeddings: Any) -> Any:
        import numpy as np

        logits = self.logits(embeddings)
        if self.scoring == "sigmoid":
            return 1.0 / (1.0 + np.exp(-logits))
        logits = logits - logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    @property
    def backbone(self) -> Any:
        """The model, loaded on first use and checked to be the one the prototypes came from."""
        if self._backbone is None:
            from zoo.embed.embedder import embedder_identity
            from zoo.loading import load
            from zoo.pulling import check_same_weights, pull, resolve_card

            from zoo.frontend import with_front_end

            card = with_front_end(resolve_card(self.model, self.registry_files), self.input.get("front_end"))
            fetched = pull(card, quiet=True)
            where = f" at {self.path}" if self.path else ""
            check_same_weights(self.weights, fetched, f"the few-shot classifier{where}")
            if embedder_identity(card, fetched) != self.embedder:
                raise ZooError(f"the few-shot classifier{where} was built with {self.model} revision {self.revision}, "
                               f"but the model now has other weights, cut point or preprocessing; build it again "
                               f"with `zoo fewshot {self.model} --support DATA`")
            self._backbone = load(card, engine=self.engine)
        return self._backbone

    def embed(self, items: Sequence[Any], batch_size: int = 32) -> Any:
        import numpy as np

        chunks = [self.backbone.embed(list(items[i:i + batch_size])).float().cpu().numpy()
                  for i in range(0, len(items), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.prototypes.shape[1]), np.float32)

    def predict(self, items: Sequence[Any], *, top_k: int = 3, batch_size: int = 32,
                as_text: bool = False) -> list[Prediction]:
        """Top ``top_k`` classes with probabilities for images (paths, arrays, PIL), clips or texts.
        An input of another modality (an image path for a text classifier) is refused before the
        model loads; ``as_text``: strings are texts whatever they name (``--text``)."""
        from zoo.embed.queries import check_query

        if isinstance(items, (str, Path)):
            raise InputError("predict takes a list of inputs")
        if not len(items):
            return []
        where = f" at {self.path}" if self.path else ""
        for item in items:
            check_query(item, self.modality, holder=f"the few-shot classifier{where} ({self.model})", noun="classifier",
                        as_text=as_text)
        probabilities = self.probabilities(self.embed(items, batch_size))
        k = max(1, min(top_k, len(self.classes)))
        out = []
        for item, row in zip(items, probabilities):
            order = row.argsort()[::-1][:k]
            out.append(Prediction(_describe(item), tuple((self.classes[i], round(float(row[i]), 6)) for i in order)))
        return out

    # ----------------------------------------------------------------- saving

    def to_dict(self) -> dict[str, Any]:
        from zoo.__about__ import __version__

        return {"kind": _KIND, "version": _VERSION, "model": self.model, "revision": self.revision,
                "embedder": self.embedder, "weights": self.weights, "modality": self.modality, "input": self.input,
                "dim": int(self.prototypes.shape[1]), "classes": list(self.classes), "counts": list(self.counts),
                "scale": self.scale, "metric": "cosine", "support": self.support, "zoo_version": __version__,
                **({"bias": self.bias, "scoring": self.scoring} if (self.bias, self.scoring) != (0.0, "softmax")
                   else {})}

    def save(self, folder: str | Path) -> Path:
        """Write the folder as a whole (:func:`zoo.atomic.atomic_write_folder`): a full disk or a
        kill leaves the previous classifier or none, never new prototypes beside old classes.
        Refuses a non-empty folder that is not one; a place that cannot hold it is one line."""
        import io

        import numpy as np

        from zoo.atomic import atomic_write_folder, json_bytes

        folder = Path(folder)
        if folder.is_dir() and any(folder.iterdir()) and not (folder / "fewshot.json").is_file():
            raise ZooError(f"{folder}: the folder exists, is not empty and holds no few-shot classifier; "
                           f"choose another --out")
        buffer = io.BytesIO()
        np.save(buffer, self.prototypes, allow_pickle=False)
        atomic_write_folder(folder, {"prototypes.npy": buffer.getvalue(), "labels.json": json_bytes(list(self.classes)),
                                     "fewshot.json": json_bytes(self.to_dict())}, fix="choose another --out")
        self.path = folder
        return folder

    def to_module(self) -> Any:
        """backbone + prototype head as one eval-mode torch module: inputs as the backbone takes them,
        ``scale * cosine + bias`` logits out (softmax, or a sigmoid for SigLIP's scoring, gives
        :meth:`probabilities`)."""
        from zoo.runs.model import Network as Classifier

        return Classifier(self.backbone, _prototype_head(self.prototypes, self.scale, self.bias)).eval()


def _prototype_head(prototypes: Any, scale: float, bias: float = 0.0) -> Any:
    from zoo.tasks.heads import PrototypeHead

    return PrototypeHead(prototypes, scale, bias)


def _describe(item: Any) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    shape = getattr(item, "shape", None)
    return f"{type(item).__name__}{list(shape) if shape is not None else ''}"


def fewshot(model: str, support: str | Path, *, skip_bad: bool = False, batch_size: int = 64,
            device: str | None = None, workers: int | None = None, engine: str = "auto", progress: bool = False,
            registry_files: Sequence[str | Path] = (), front_end: dict[str, Any] | None = None) -> FewShot:
    """A prototype classifier for ``model`` from labelled ``support`` data (any dataset zoo reads:
    class folders, CSV/JSONL manifests, digits), a handful of examples per class. The support
    embeddings go through zoo finetune's feature cache, computed by a frozen pass on ``engine``.
    Sounds go through the log-mel front end (``front_end``: its settings), recorded in ``input``."""
    from zoo.data import open_dataset
    from zoo.devices import torch_device
    from zoo.data.checks import problems_error
    from zoo.embed.embedder import embedder_identity
    from zoo.embed.store import forking_loaders
    from zoo.frozen.features import cached_embeddings
    from zoo.frozen.choice import LazyPass
    from zoo.loading import load
    from zoo.pulling import pull, resolve_card

    from zoo.frontend import bridge, declared

    card = resolve_card(model, registry_files)
    dataset = open_dataset(support, modality=card.modality)
    card = bridge(card, dataset.modality, front_end)  # sounds for an image backbone: through the front end
    if dataset.problems and not skip_bad:
        raise problems_error(dataset.problems)
    if len(dataset.classes) < 2:
        raise InputError(f"{support}: {len(dataset.classes)} class found; a classifier needs at least two")
    fetched = pull(card, quiet=not progress)
    chosen = torch_device(device)
    backbone = load(card, device=chosen)
    frozen = LazyPass(backbone, fetched, engine=engine, device=chosen, workers=workers,
                      check=[e.item for e in dataset.examples])
    with forking_loaders():
        embeddings, _ = cached_embeddings(card, fetched, dataset, frozen, batch_size=batch_size)
    classifier = FewShot.from_embeddings(
        embeddings.numpy(), dataset.labels, dataset.classes, model=card.name,
        revision=fetched.resolved or fetched.revision, embedder=embedder_identity(card, fetched),
        weights=fetched.weights_record()["sha256"], modality=dataset.modality,
        input={**{k: v for k, v in asdict(card.input).items() if v is not None and k != "front_end"},
               **({"front_end": declared(card)} if card.input.front_end is not None else {})},
        support={"data": str(support) if str(support) == "digits" else str(Path(support).resolve()),
                 "fingerprint": dataset.fingerprint()})
    classifier.engine = engine
    # Predictions reuse the loaded model and its pass; otherwise (a cache hit, or a GPU) the model
    # loads again on first use, on the CPU, with its engine.
    if frozen.made is not None and chosen.type == "cpu":
        classifier._backbone = backbone.use_engine(frozen.made)
    elif chosen.type == "cpu" and engine == "torch":
        classifier._backbone = backbone
    return classifier


def zero_shot(model: str, labels: str | Path | Sequence[str] | dict[str, str], *,
              templates: Sequence[str] | None = None, engine: str = "auto",
              registry_files: Sequence[str | Path] = ()) -> FewShot:
    """A classifier from label names alone: each class's prototype is the normalised mean of the
    embedded prompts (``templates`` with the label's name or description in them; default:
    :func:`zoo.prompts.default_templates` for the inputs' modality), so an input goes to the label
    its embedding is closest to. It saves, predicts and exports exactly like a :func:`fewshot`
    classifier.

    Needs a model that embeds text in the space of its inputs: a text encoder classifies texts;
    an image-text model (CLIP, SigLIP: ``zoo list --tag image-text``) classifies images, its text
    tower embedding the prompts and its scores being the model's own (``logit_scale * cosine +
    logit_bias`` from its weights; a softmax over the labels, or SigLIP's sigmoid per label).
    The classifier's ``prototypes`` (unit rows), ``scale``, ``bias`` and ``scoring`` are those of
    the label names' text embeddings: what a head initialised from the names starts from."""
    from zoo.card import tower_card
    from zoo.embed.embedder import embedder_identity
    from zoo.pulling import pull, resolve_card

    card = resolve_card(model, registry_files)
    if card.modality != "text" and card.text is None:
        raise InputError(f"model {card.name!r} embeds {card.modality}s and has no text tower, so label names cannot be "
                         f"compared with its inputs; zero-shot needs a text encoder for texts (zoo list --modality "
                         f"text) or an image-text model for images (zoo list --tag image-text)")
    names = parse_labels(labels)
    chosen = check_templates(default_templates(card.modality) if templates is None else templates)
    fetched = pull(card, quiet=True)
    prompts = class_prompts(card, list(names.values()), chosen, engine=engine)
    support: dict[str, Any] = {"labels": names, "templates": list(chosen)}
    if card.text is not None:  # an image-text model: its own scores, and the tower the prompts went through
        support["text_tower"] = embedder_identity(tower_card(card, "text"), fetched)
    classifier = FewShot(model=card.name, revision=fetched.resolved or fetched.revision,
                         embedder=embedder_identity(card, fetched), weights=fetched.weights_record()["sha256"],
                         modality=card.modality,
                         input={k: v for k, v in asdict(card.input).items() if v is not None},
                         classes=list(names), prototypes=prompts.prototypes, counts=[0] * len(names),
                         support={"zero_shot": support}, engine=engine, **prompts.scores)
    if card.text is None:
        classifier._backbone = prompts.tower
    return classifier


def load_fewshot(folder: str | Path, *, engine: str = "auto", registry_files: Sequence[str | Path] = ()) -> FewShot:
    """A classifier saved by :meth:`FewShot.save` (the model loads when it first predicts, with a
    frozen pass on ``engine``).

    Every file is checked as it is read, since a damaged one would classify wrongly without a
    word: ``fewshot.json`` (valid JSON, no key twice, every key of the right type, classes and
    counts that agree), ``prototypes.npy`` (a finite (classes, dim) array of unit rows),
    ``labels.json`` (the same classes in the same order) and the model it names (in the
    registry, embedding ``dim``-d vectors of its modality). A damaged file is one
    :class:`ZooError` line naming it and how to build the classifier again."""
    folder = Path(folder)
    meta_path = folder / "fewshot.json"
    if not meta_path.is_file():
        raise InputError(f"{folder}: not a few-shot classifier folder (no fewshot.json); build one with "
                         f"`zoo fewshot MODEL --support DATA --out {folder}`")
    meta = _read_meta(meta_path, folder)
    again = _build_again(meta, folder)
    prototypes = _read_prototypes(folder / "prototypes.npy", meta, again)
    _check_labels(folder / "labels.json", meta["classes"], again)
    _check_model(meta, prototypes.shape[1], meta_path, registry_files, again)
    return FewShot(model=meta["model"], revision=meta["revision"], embedder=meta["embedder"],
                   modality=meta["modality"], input=meta["input"], classes=meta["classes"], prototypes=prototypes,
                   counts=meta["counts"], scale=meta["scale"], support=meta.get("support"), path=folder,
                   engine=engine, registry_files=registry_files, weights=meta.get("weights"),
                   bias=meta.get("bias", 0.0), scoring=meta.get("scoring", "softmax"))


_REQUIRED = ("kind", "version", "model", "revision", "embedder", "modality", "input", "classes", "counts", "scale")


def _number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: What each key of fewshot.json must hold (see :meth:`FewShot.to_dict`).
_CHECKS = {
    "model": lambda v: isinstance(v, str) and bool(v), "revision": lambda v: isinstance(v, str),
    "embedder": lambda v: isinstance(v, str) and bool(v),
    "modality": lambda v: v in MODALITIES,
    "input": lambda v: isinstance(v, dict),
    "classes": lambda v: (isinstance(v, list) and bool(v) and all(isinstance(c, str) and c for c in v)
                          and len(set(v)) == len(v)),
    "counts": lambda v: isinstance(v, list) and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in v),
    "scale": lambda v: _number(v) and v > 0,
    "dim": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "weights": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in (*v, *v.values())),
    "support": lambda v: isinstance(v, dict),
    "bias": _number,
    "scoring": lambda v: v in SCORINGS,
}


def _read_meta(path: Path, folder: Path) -> dict[str, Any]:
    from zoo.strictjson import check_record, read_record

    try:
        meta = read_record(path.read_bytes(), ("kind", "version"))
        if meta["kind"] != _KIND or meta["version"] != _VERSION:
            raise ZooError(f"{path}: kind {meta['kind']!r} version {meta['version']!r}; this zoo reads {_KIND!r} "
                           f"version {_VERSION}: build the classifier again with this zoo")
        check_record(meta, _REQUIRED, _CHECKS)
    except OSError as exc:
        raise ZooError(f"{path}: cannot read it ({exc.strerror}); check the folder's permissions") from None
    except ValueError as exc:
        raise ZooError(f"{path}: damaged: {exc}; {_build_again({}, folder)}") from None
    if len(meta["counts"]) != len(meta["classes"]):
        raise ZooError(f"{path}: damaged: {len(meta['classes'])} classes but {len(meta['counts'])} counts; "
                       f"{_build_again(meta, folder)}")
    return meta


def _build_again(meta: dict[str, Any], folder: Path) -> str:
    """How to make the folder again, with what the damaged record still says where it can."""
    model = meta.get("model") if isinstance(meta.get("model"), str) else "MODEL"
    support = meta.get("support") if isinstance(meta.get("support"), dict) else {}
    if "zero_shot" in support:
        source = "--labels NAMES"
    else:
        source = f"--support {support['data']}" if isinstance(support.get("data"), str) else "--support DATA"
    return f"build the classifier again with `zoo fewshot {model} {source} --out {folder}`"


def _read_prototypes(path: Path, meta: dict[str, Any], again: str) -> Any:
    """``prototypes.npy`` as zoo wrote it: one finite unit-length row per class, ``dim`` wide."""
    import numpy as np

    try:
        prototypes = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ZooError(f"{path}: missing, so the classifier is incomplete; {again}") from None
    except OSError as exc:
        raise ZooError(f"{path}: cannot read it ({exc.strerror}); check the folder's permissions") from None
    except (ValueError, EOFError) as exc:  # garbage, a pickle, a truncated array
        raise ZooError(f"{path}: damaged (not a numpy array file: {exc}); {again}") from None
    classes, dim = len(meta["classes"]), meta.get("dim")
    why = None
    if prototypes.ndim != 2 or not np.issubdtype(prototypes.dtype, np.floating):
        why = f"{prototypes.dtype} values of shape {prototypes.shape}, not a (classes, dim) float array"
    elif prototypes.shape[0] != classes:
        why = f"{prototypes.shape[0]} prototypes for the {classes} classes of fewshot.json"
    elif dim is not None and prototypes.shape[1] != dim:
        why = f"{prototypes.shape[1]}-d prototypes, but fewshot.json says {dim}-d"
    elif not np.isfinite(prototypes).all():
        why = "values that are not finite"
    elif not np.allclose(np.linalg.norm(prototypes, axis=1), 1.0, atol=1e-3):
        why = "rows that are not of unit length, as every prototype is"
    if why:
        raise ZooError(f"{path}: damaged ({why}); {again}")
    return prototypes.astype(np.float32)


def _check_labels(path: Path, classes: list[str], again: str) -> None:
    """``labels.json``: the classes of fewshot.json, in the same order (the outputs' order)."""
    from zoo.strictjson import loads

    try:
        labels = loads(path.read_bytes())
    except FileNotFoundError:
        raise ZooError(f"{path}: missing, so the classifier is incomplete; {again}") from None
    except OSError as exc:
        raise ZooError(f"{path}: cannot read it ({exc.strerror}); check the folder's permissions") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path}: damaged (not valid JSON: {exc}); {again}") from None
    if labels != classes:
        shown = f"{len(labels)} labels" if isinstance(labels, list) else f"a JSON {type(labels).__name__}"
        raise ZooError(f"{path}: damaged ({shown} that are not the {len(classes)} classes of fewshot.json in "
                       f"their order); {again}")


def _check_model(meta: dict[str, Any], dim: int, path: Path, registry_files: Sequence[str | Path], again: str) -> None:
    """The model fewshot.json names is known, and embeds what the prototypes are made of."""
    from zoo.errors import UnknownModelError
    from zoo.pulling import resolve_card

    try:
        card = resolve_card(meta["model"], registry_files)
    except UnknownModelError as exc:
        hint = f" (did you mean {', '.join(exc.suggestions)}?)" if exc.suggestions else ""
        raise ZooError(f"{path}: names model {meta['model']!r}, which is not in the registry{hint}; install the "
                       f"plugin that provides it, or give the registry file that has it (--registry)") from None
    front_end = meta["input"].get("front_end")
    reads = front_end.get("modality") if isinstance(front_end, dict) else card.modality
    if reads != meta["modality"] or card.embedding.dim != dim:
        raise ZooError(f"{path}: damaged: {meta['model']} embeds {card.embedding.dim}-d {reads} vectors, but the "
                       f"classifier holds {dim}-d {meta['modality']} prototypes; {again}")


def expand_inputs(inputs: Sequence[str], modality: str) -> list[str]:
    """Command-line inputs as items: for images (and sounds), a folder stands for the files inside it."""
    if modality == "text":
        return list(inputs)
    if modality == "image":
        from zoo.data.formats import IMAGE_EXTENSIONS as suffixes
    else:
        from zoo.frontend import suffixes as front_end_suffixes

        suffixes = frozenset(front_end_suffixes(modality))  # the files a front end reads
    items: list[str] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir()
                           if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes)
            if not found:
                what = "images" if modality == "image" else f"{modality} files"
                raise InputError(f"{given}: a folder without {what} ({', '.join(sorted(suffixes))})")
            items += found
        else:
            items.append(given)
    return items


def default_folder(model: str) -> Path:
    """Where ``zoo fewshot`` saves without --out: fewshot/MODEL-TIME."""
    return Path("fewshot") / f"{model.replace('/', '--')}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"

