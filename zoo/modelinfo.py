"""What an exported ONNX file says about itself: one frozen record, stored in ``metadata_props``.

Stdlib only: the export writes it with onnx, the torch-free runtime reads it back through
onnxruntime's ``custom_metadata_map``; both go through :meth:`ModelInfo.to_props` and
:meth:`ModelInfo.from_props`, so the format is defined here once.

Every key starts with ``zoo.``; values are strings (JSON for the structured ones), readable in any
ONNX viewer:

==========================  ================================================================
``zoo.format``              version of this layout (``1``)
``zoo.version``             the zoo version that exported the file
``zoo.kind``                ``classifier`` (probabilities out) or ``embedding``
``zoo.modality``            ``image``, ``text``, or ``audio`` (sounds read by an image network)
``zoo.inputs``              input names, JSON list
``zoo.output``              output name
``zoo.labels``              class names in output order, JSON list (classifiers)
``zoo.preprocessing``       images: size, resize, mean, std, interpolation; text: max_length,
                            tokenizer (file name beside the ONNX file) and its sha256; sounds:
                            the image's, plus ``front_end`` (name, modality, every parameter)
``zoo.source``              the registry model, and the run (``run``) or few-shot (``fewshot``)
                            folder it came from, with its head (``prototypes`` for few-shot)
``zoo.weights``             where the pretrained weights came from and their sha256, plus the
                            fine-tuned checkpoint's sha256 for a run, or the prototypes' for a
                            few-shot classifier
``zoo.validation``          onnxruntime vs PyTorch: samples, max abs/rel diff, tolerances
``zoo.quantization``        int8 only: method, calibration size, fp32 vs int8 accuracy
==========================  ================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import InputError

__all__ = ["ModelInfo", "FORMAT", "PREFIX"]

FORMAT = 1
PREFIX = "zoo."
_JSON_KEYS = ("inputs", "labels", "preprocessing", "source", "weights", "validation", "quantization")


@dataclass(frozen=True)
class ModelInfo:
    """Everything a consumer needs to run an exported model, as plain data."""

    # what it is
    kind: str  # "classifier" | "embedding"
    modality: str  # "image" | "text" | "audio"
    inputs: tuple[str, ...]
    output: str
    labels: tuple[str, ...] = ()
    # how to feed it
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    # where it came from
    source: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""
    # evidence
    validation: Mapping[str, Any] = field(default_factory=dict)
    quantization: Mapping[str, Any] | None = None

    @property
    def model(self) -> str:
        """The registry name of the backbone it was built from."""
        return str(self.source.get("model", "?"))

    @property
    def precision(self) -> str:
        return "int8" if self.quantization else "fp32"

    def to_props(self) -> dict[str, str]:
        """``metadata_props`` as ONNX stores them: string keys and values."""
        props = {"format": str(FORMAT), "version": self.version, "kind": self.kind, "modality": self.modality,
                 "output": self.output}
        for key in _JSON_KEYS:
            value = getattr(self, key)
            if value is None or (key == "labels" and not value):
                continue
            props[key] = json.dumps(_plain(value), ensure_ascii=False, sort_keys=key != "labels")
        return {PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "the model") -> ModelInfo:
        """Parse ``metadata_props``; a file zoo did not export (or a newer layout) is an InputError."""
        ours = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if "kind" not in ours or "modality" not in ours:
            raise InputError(f"{where}: no zoo metadata (labels, preprocessing) in this ONNX file; "
                             f"export it with `zoo export`, or run it with onnxruntime directly")
        if int(ours.get("format", "1")) > FORMAT:
            raise InputError(f"{where}: exported by a newer zoo (metadata format {ours['format']}, "
                             f"this zoo reads {FORMAT}); upgrade zoo")
        try:
            parsed = {k: json.loads(ours[k]) for k in _JSON_KEYS if k in ours}
        except ValueError as exc:
            raise InputError(f"{where}: damaged zoo metadata ({exc}); export the model again") from None
        return cls(kind=ours["kind"], modality=ours["modality"], inputs=tuple(parsed.get("inputs", ())),
                   output=ours.get("output", ""), labels=tuple(parsed.get("labels", ())),
                   preprocessing=parsed.get("preprocessing", {}), source=parsed.get("source", {}),
                   weights=parsed.get("weights", {}), version=ours.get("version", ""),
                   validation=parsed.get("validation", {}), quantization=parsed.get("quantization"))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "modality": self.modality, "inputs": list(self.inputs), "output": self.output,
                "labels": list(self.labels), "preprocessing": _plain(self.preprocessing),
                "source": _plain(self.source), "weights": _plain(self.weights), "version": self.version,
                "validation": _plain(self.validation), "quantization": _plain(self.quantization)}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
