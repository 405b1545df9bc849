"""Model cards: what zoo knows about one backbone, as frozen plain data.

A card is parsed from a registry table (see :mod:`zoo.registries`) and never changes afterwards.
Fields are grouped the way a user reads them: identity, where the weights come from, what input
the network expects, where to cut it, and the evidence behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["ModelCard", "InputSpec", "FrontEndSpec", "CutPoint", "FileSpec", "ComponentRef", "Origin", "TextTower",
           "JointSpace", "MODALITIES", "tower_card"]

MODALITIES = ("image", "text", "audio")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
CROP_MODES = ("center", "squash")  # timm's names: keep the aspect ratio and crop, or scale both sides
POOLINGS = ("mean", "cls", "max", "pooler", "avg", "token")
TOKENIZER_KINDS = ("wordpiece", "sentencepiece", "bpe", "unigram", "char")
TEXT_POOLINGS = ("eos", "last", "cls", "mean")  # how an image-text model's text tower pools its tokens
PADDINGS = ("longest", "max_length")
SCORINGS = ("softmax", "sigmoid")
#: The output nodes of an image-text model's towers: each one's embedding in the joint space.
TOWER_NODES = {"image": "image_embeds", "text": "text_embeds"}

OriginKind = Literal["builtin", "plugin", "user"]


def frozen_map(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a copy, so a frozen card cannot be changed through its tables."""
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Origin:
    """Where an entry came from: the built-in file, a plugin, or a user file."""

    kind: OriginKind
    name: str  # "zoo", the plugin's name, or the user file's path
    path: Path | None = None  # the file that declared the entry; relative paths resolve against it

    def __str__(self) -> str:
        if self.kind == "builtin":
            return f"the built-in registry ({self.path})" if self.path else "the built-in registry"
        if self.kind == "plugin":
            return f"plugin {self.name!r}"
        return f"user file {self.path or self.name}"

    @property
    def label(self) -> str:
        """Short provenance for tables: 'builtin', the plugin name, or 'user'."""
        return self.name if self.kind == "plugin" else self.kind


@dataclass(frozen=True)
class ComponentRef:
    """A reference to a plugin component (a source or an adapter) plus its plugin-owned fields."""

    type: str
    options: Mapping[str, Any] = field(default_factory=frozen_map)

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class FileSpec:
    """A file the pull must produce, with what is known of its hash ahead of time."""

    name: str
    sha256: str | None = None  # the full hash, when known: it always wins
    sha256_prefix: str | None = None  # e.g. torchvision's file names carry the first 8 hex digits
    size: int | None = None


@dataclass(frozen=True)
class FrontEndSpec:
    """A front end that turns another modality into what the network takes (a sound into a log-mel
    spectrogram image), with every parameter resolved: plain data, so that a run records it, the
    feature cache keys on it and an exported model repeats it without the plugin's defaults.

    ``name``: the registered front end (``zoo.frontend``); ``modality``: what it reads
    (``"audio"``); ``params``: sorted ``(key, value)`` pairs of JSON values.
    """

    name: str
    modality: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def options(self) -> dict[str, Any]:
        return {key: value for key, value in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, "params": self.options}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontEndSpec:
        return cls(str(data["name"]), str(data["modality"]), _frozen_params(data.get("params") or {}))


def _frozen_params(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Hashable params: lists become tuples, keys sorted."""
    def freeze(value: Any) -> Any:
        return tuple(freeze(v) for v in value) if isinstance(value, (list, tuple)) else value

    return tuple(sorted((str(k), freeze(v)) for k, v in params.items()))


@dataclass(frozen=True)
class InputSpec:
    """What the network expects as input."""

    # images
    size: tuple[int, int] | None = None  # (height, width) after the center crop
    resize: int | None = None  # shorter side before the crop
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None
    crop_mode: str | None = None  # None or "center": shorter side to ``resize``; "squash": both sides
    # text
    max_length: int | None = None
    tokenizer: str | None = None  # tokenizer kind; its files come with the model's files
    # audio
    sample_rate: int | None = None
    # another modality read through a front end (set for a run, never by a registry card)
    front_end: FrontEndSpec | None = None


@dataclass(frozen=True)
class CutPoint:
    """The recommended cut: the node whose output is the embedding, and its size."""

    node: str
    dim: int
    pooling: str | None = None  # text: how token states become one vector


@dataclass(frozen=True)
class TextTower:
    """The second tower of an image-text model (CLIP, SigLIP): what turns a text into a vector of
    the space the card's image embedding lives in. The card's own ``input`` is the image tower's.

    ``tokenizer`` and ``max_length`` as a text model's input; ``pooling``: how the tower makes one
    vector of its tokens (CLIP: the end-of-text token, ``eos``; SigLIP: the ``last`` position), done
    inside the network; ``projection``: the module that maps the pooled vector into the joint
    space (``text_projection``; SigLIP's is the tower's own ``text_model.head``); ``padding``:
    ``max_length`` for a tower trained on texts padded to ``max_length`` with every position
    attended (SigLIP), ``longest`` otherwise; ``stages``: the tower's layers, input to output."""

    tokenizer: str
    max_length: int
    pooling: str
    stages: tuple[str, ...]
    projection: str | None = None
    padding: str = "longest"


@dataclass(frozen=True)
class JointSpace:
    """Where an image-text model compares its towers' vectors: ``dim``, the shared size;
    ``scoring``: ``softmax`` over the labels (CLIP) or a ``sigmoid`` per label (SigLIP), of
    ``logit_scale * cosine + logit_bias``. The scale and bias are what the weights hold; a card
    may state them (they are checked against the weights when the model loads) or leave them to
    the weights."""

    dim: int
    scoring: str = "softmax"
    logit_scale: float | None = None
    logit_bias: float | None = None


@dataclass(frozen=True)
class ModelCard:
    """Everything zoo knows about one backbone."""

    # identity
    name: str
    description: str
    modality: str
    task: str
    license: str
    params: int
    # weights: where they come from and how they become a module
    source: ComponentRef
    adapter: ComponentRef
    files: tuple[FileSpec, ...] = ()
    # input
    input: InputSpec = field(default_factory=InputSpec)
    # cut point, head and stages (input -> output)
    embedding: CutPoint = field(default_factory=lambda: CutPoint("", 0))
    head: str | None = None
    stages: tuple[str, ...] = ()
    features: Mapping[str, int] = field(default_factory=frozen_map)  # name -> channels, input side first
    # each feature's stride in input pixels (timm's feature_info ``reduction``), where the card
    # says (``features = { NAME = { channels = C, stride = S } }``): what a dense task's head needs
    strides: Mapping[str, int] = field(default_factory=frozen_map)
    # image-text models: the text tower and the joint space (the card's modality is the image tower's)
    text: TextTower | None = None
    joint: JointSpace | None = None
    # set on a tower's view of an image-text card (tower_card), never by a registry card
    tower: str | None = None
    # evidence and provenance
    metrics: Mapping[str, float] = field(default_factory=frozen_map)
    family: str | None = None  # architecture family ("resnet", "vit"...), for finding a backbone
    gflops: float | None = None  # one forward pass at the card's input size, as the library states it
    weights_mb: float | None = None  # the download, as the library states it
    provenance: str | None = None  # where the card's numbers come from (a generator, a library's metadata)
    tags: tuple[str, ...] = ()
    homepage: str | None = None
    paper: str | None = None
    notes: str | None = None
    replace: bool = False
    origin: Origin = field(default_factory=lambda: Origin("builtin", "zoo"))

    @property
    def embedding_dim(self) -> int:
        return self.embedding.dim

    def metric(self, key: str) -> float | None:
        """A metric by full key ('imagenet-1k/acc@1') or by its name alone ('acc@1')."""
        if key in self.metrics:
            return self.metrics[key]
        for full, value in self.metrics.items():
            if full.split("/", 1)[-1] == key:
                return value
        return None

    @property
    def towers(self) -> tuple[str, ...]:
        """The modalities this model embeds into one space: ``("image", "text")`` for an
        image-text model, else its own modality alone."""
        return ("image", "text") if self.text is not None else (self.modality,)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: the card as the registry would spell it, plus its origin."""
        out = _plain(self)
        if self.strides:  # spelt as the registry does: each feature's channels and stride together
            out["features"] = {name: {"channels": channels, **({"stride": self.strides[name]}
                                                               if name in self.strides else {})}
                               for name, channels in self.features.items()}
        out.pop("strides", None)
        out["origin"] = {"kind": self.origin.kind, "name": self.origin.name,
                         "path": str(self.origin.path) if self.origin.path else None}
        return out


def tower_card(card: ModelCard, tower: str) -> ModelCard:
    """The card of one tower of an image-text model, as a card of its own modality over the same
    files: the image tower is the card itself; the text tower is a text model's card (its
    tokenizer and ``max_length`` as input, its joint-space output as the embedding, its stages),
    marked ``tower="text"``. Everything zoo does with a text model (embed, the frozen pass, the
    export, the torch-free runtime) then runs the text tower unchanged. ``ValueError`` for a
    tower the card does not have."""
    from dataclasses import replace

    if tower == card.modality and card.tower is None:
        return card
    if tower != "text" or card.text is None or card.joint is None:
        raise ValueError(f"model {card.name!r} has no {tower} tower")
    text = card.text
    return replace(card, modality="text", task="feature-extraction",
                   input=InputSpec(max_length=text.max_length, tokenizer=text.tokenizer),
                   embedding=CutPoint(TOWER_NODES["text"], card.joint.dim, "pooler"), head=None,
                   stages=text.stages, features=frozen_map(), strides=frozen_map(), tower="text")


def _plain(value: Any) -> Any:
    if isinstance(value, Origin):
        return str(value)
    if isinstance(value, ComponentRef):
        return {"type": value.type, **{k: _plain(v) for k, v in value.options.items()}}
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)
                if getattr(value, f.name) is not None}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
