"""What every export is made of, below the modules that prepare one: :class:`Prepared` (the module,
its samples, its metadata), the graph wrapper a classifier or regression ends in, the image and
text preprocessing records, and :func:`finish`, which assembles them.

Its own module so that :mod:`zoo.export.prepare` (which sends a dense task's run to
:mod:`zoo.export.dense`) and :mod:`zoo.export.dense` both import it and neither imports the other
back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["Prepared", "graph_module", "finish", "spread"]


@dataclass
class Prepared:
    """One exportable model and its data; ``items`` are images (paths/arrays) or texts."""

    module: Any  # torch.nn.Module in eval mode: inputs in the order of ``input_names``
    card: Any  # ModelCard
    kind: str  # "classifier" | "embedding"
    input_names: tuple[str, ...]
    output_name: str
    labels: tuple[str, ...]
    preprocessing: dict[str, Any]
    source: dict[str, Any]
    weights: dict[str, Any]
    samples: list[Any]  # validation inputs
    samples_from: str
    calibration: list[Any]
    calibration_from: str
    evaluation: tuple[list[Any], list[int]] | None  # labelled data for the int8 check (held out, for runs)
    evaluation_from: str
    tokenizer: Any = None  # tokenizers.Tokenizer to write beside a text model
    reference_encode: Callable[[Sequence[str]], dict[str, Any]] | None = None  # the trained model's tokenizer
    notes: list[str] = field(default_factory=list)
    home: Path | None = None  # the run or few-shot folder: exports default into it
    # other towers of an image-text model, exported beside the main file: (tower, its Prepared)
    companions: list[tuple[str, Prepared]] = field(default_factory=list)
    # a dense task's own checks of the exported file (an OnnxModel): ``check`` its answers against
    # PyTorch's on the samples (a detector's kept boxes), returning what the metadata records;
    # ``judge`` the task's metric on the held-out data (int8 is judged by its drop, in points)
    check: Callable[[Any], dict[str, Any]] | None = None
    judge: Callable[[Any], float] | None = None
    judge_metric: str = "mAP"  # what ``judge`` measures, as messages name it (a segmenter's mIoU)

    @property
    def modality(self) -> str:
        """What the exported model reads: the card's modality, or its front end's (sounds)."""
        front_end = self.card.input.front_end
        return front_end.modality if front_end is not None else self.card.modality

    @property
    def name(self) -> str:
        """A file-name-friendly name: the run's or few-shot folder's, or the model's."""
        return self.home.name if self.home else self.card.name.replace("/", "--")


def graph_module(network: Any, modality: str, probabilities: bool | str | tuple[Any, Any]) -> Any:
    """``network`` wrapped for tracing, in eval mode (a wrapper left in train mode would switch the
    network back to training, dropout included, when the exporter restores modes). ``probabilities``:
    True (a softmax over classes), ``"sigmoid"`` (one probability per label: multi-label), a
    ``(scale, shift)`` pair (a regression's standardised outputs back in the targets' units) or False."""
    return _graph_class()(network, modality, probabilities).eval()


@functools.cache
def _graph_class() -> type:
    import torch
    from torch import nn

    class Graph(nn.Module):
        """Images: ``pixel_values``; text: ``input_ids``, ``attention_mask``; softmax for classifiers
        (a sigmoid per label for multi-label ones)."""

        def __init__(self, network: nn.Module, modality: str, probabilities: bool | str | tuple[Any, Any]) -> None:
            super().__init__()
            self.network = network
            self.modality = modality
            # a network traced for one input at a time (its batch axis then stays 1)
            self.one_at_a_time = bool(getattr(network, "one_at_a_time", False))
            self.affine = isinstance(probabilities, tuple)
            if self.affine:  # buffers: traced as constants of the graph
                self.register_buffer("scale", torch.as_tensor(probabilities[0], dtype=torch.float32))
                self.register_buffer("shift", torch.as_tensor(probabilities[1], dtype=torch.float32))
                probabilities = False
            self.probabilities = probabilities

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            if self.modality == "text":
                out = self.network(input_ids=inputs[0], attention_mask=inputs[1])
            else:
                out = self.network(inputs[0])
            if self.affine:
                return out * self.scale + self.shift
            if self.probabilities == "sigmoid":
                return out.sigmoid()
            return out.softmax(dim=-1) if self.probabilities else out

    return Graph


def _image_preprocessing(card: Any) -> dict[str, Any]:
    spec = card.input
    return {"size": list(spec.size or (224, 224)), "resize": spec.resize or min(spec.size or (224, 224)),
            "mean": list(spec.mean or (0.0, 0.0, 0.0)), "std": list(spec.std or (1.0, 1.0, 1.0)),
            "interpolation": spec.interpolation or "bilinear", **({"crop_mode": spec.crop_mode} if spec.crop_mode else {})}


def _text_tokenizer(card: Any, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    """The ``tokenizers.Tokenizer`` behind a transformers tokenizer, set to truncate and pad like training."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ZooError(f"model {card.name!r}: its tokenizer has no `tokenizers` version (tokenizer.json), which "
                       f"the torch-free runtime needs; choose a model with a fast tokenizer")
    copy = Tokenizer.from_str(backend.to_str())
    max_length = int(card.input.max_length or getattr(tokenizer, "model_max_length", 512))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pad_token = tokenizer.pad_token or "[PAD]"
    # an image-text model's text tower trained on texts padded to max_length (SigLIP) is fed so
    full = card.text is not None and card.text.padding == "max_length"
    copy.enable_truncation(max_length)
    copy.enable_padding(pad_id=pad_id, pad_token=pad_token, length=max_length if full else None)
    return copy, {"max_length": max_length, "pad_id": pad_id, "pad_token": pad_token,
                  **({"padding": "max_length"} if full else {})}


def _reference_encoder(backbone: Any) -> Callable[[Sequence[str]], dict[str, Any]]:
    def encode(texts: Sequence[str]) -> dict[str, Any]:
        batch = backbone.preprocess(list(texts))
        return {k: v.numpy() for k, v in batch.items()}

    return encode


def finish(prepared_module: Any, card: Any, backbone: Any, probabilities: bool | str, **fields: Any) -> Prepared:
    module = graph_module(prepared_module, card.modality, probabilities)
    if card.modality == "image":
        names: tuple[str, ...] = ("pixel_values",)
        preprocessing = _image_preprocessing(card)
        if card.input.front_end is not None:  # sounds: the runtime repeats the front end from this record
            preprocessing["front_end"] = card.input.front_end.to_dict()
        tokenizer = reference = None
    elif card.modality == "text":
        names = ("input_ids", "attention_mask")
        if backbone.tokenizer is None:
            raise ZooError(f"model {card.name!r}: no tokenizer was loaded (pretrained=False?); text models export "
                           f"with their pulled files")
        tokenizer, preprocessing = _text_tokenizer(card, backbone.tokenizer)
        reference = _reference_encoder(backbone)
    else:
        raise ZooError(f"model {card.name!r}: exporting {card.modality} models is not supported yet")
    return Prepared(module=module, card=card, input_names=names, preprocessing=preprocessing, tokenizer=tokenizer,
                    reference_encode=reference, **fields)


def spread(items: list[Any], count: int) -> list[Any]:
    """Up to ``count`` items spread evenly over the list (classes are often stored in runs)."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
