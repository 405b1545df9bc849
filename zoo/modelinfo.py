"""What an exported ONNX file says about itself: one frozen record, stored in ``metadata_props``.

Stdlib and zoo's data model only: the export writes it with onnx, the torch-free runtime reads it
back through onnxruntime's ``custom_metadata_map``; both go through :meth:`ModelInfo.to_props` and
:meth:`ModelInfo.from_props`, so the format is defined here once, and so is its check
(:func:`check`): a file is refused when read, in one line naming it, before any field is used.

Every key starts with ``zoo.``; values are strings (JSON for the structured ones), readable in any
ONNX viewer:

==========================  ================================================================
``zoo.format``              version of this layout (``1``)
``zoo.version``             the zoo version that exported the file
``zoo.kind``                ``classifier`` (probabilities out), ``regression`` (numbers in the
                            targets' units), ``detection`` (a row per anchor point: a box and
                            a score per label, which the runtime selects, suppresses and
                            scales: ``zoo.postprocess``), ``segmentation`` (each label's
                            score at every pixel, N x labels x H x W: the runtime takes each
                            pixel's best and scales the mask to the picture) or ``embedding``
``zoo.modality``            ``image``, ``text``, or ``audio`` (sounds read by an image network)
``zoo.inputs``              input names, JSON list
``zoo.output``              output name
``zoo.labels``              class names in output order, JSON list (classifiers); a
                            regression's target names
``zoo.preprocessing``       images: size, resize, mean, std, interpolation; text: max_length,
                            tokenizer (file name beside the ONNX file) and its sha256; sounds:
                            the image's, plus ``front_end`` (name, modality, every parameter)
``zoo.source``              the registry model, and the run (``run``) or few-shot (``fewshot``)
                            folder it came from, with its head (``prototypes`` for few-shot); a
                            detector's post-processing: ``levels`` (points per pyramid level),
                            ``score``, ``nms``, ``candidates``, ``detections``
``zoo.weights``             where the pretrained weights came from and their sha256, plus the
                            fine-tuned checkpoint's sha256 for a run, or the prototypes' for a
                            few-shot classifier
``zoo.validation``          onnxruntime vs PyTorch: samples, max abs/rel diff, tolerances
``zoo.quantization``        int8 only: method, calibration size, fp32 vs int8 accuracy
==========================  ================================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import InputError
from zoo.schema import check_type, describe_type

__all__ = ["ModelInfo", "check", "FORMAT", "PREFIX", "KINDS"]

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
        """Parse ``metadata_props`` and check every field the runtime reads (:func:`check`); a file
        zoo did not export, a newer layout or damaged metadata is an InputError naming ``where``."""
        ours = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if "kind" not in ours or "modality" not in ours:
            raise InputError(f"{where}: no zoo metadata (labels, preprocessing) in this ONNX file; "
                             f"export it with `zoo export`, or run it with onnxruntime directly")
        try:
            version = int(ours.get("format", "1"))
        except ValueError:
            raise _damaged(where, "format", f"{ours['format'][:40]!r} is not a layout number") from None
        if version > FORMAT:
            raise InputError(f"{where}: exported by a newer zoo (metadata format {ours['format']}, "
                             f"this zoo reads {FORMAT}); upgrade zoo")
        parsed: dict[str, Any] = {}
        for key in _JSON_KEYS:
            if key in ours:
                try:
                    parsed[key] = json.loads(ours[key])
                except ValueError as exc:
                    raise _damaged(where, key, f"not JSON ({exc})") from None
        for key, annotation in _TYPES.items():
            if key in parsed and not check_type(parsed[key], annotation):
                raise _damaged(where, key, f"expected {describe_type(annotation)}, got {_show(parsed[key])}")
        info = cls(kind=ours["kind"], modality=ours["modality"], inputs=tuple(parsed.get("inputs", ())),
                   output=ours.get("output", ""), labels=tuple(parsed.get("labels", ())),
                   preprocessing=parsed.get("preprocessing", {}), source=parsed.get("source", {}),
                   weights=parsed.get("weights", {}), version=ours.get("version", ""),
                   validation=parsed.get("validation", {}), quantization=parsed.get("quantization"))
        check(info, where)
        return info

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "modality": self.modality, "inputs": list(self.inputs), "output": self.output,
                "labels": list(self.labels), "preprocessing": _plain(self.preprocessing),
                "source": _plain(self.source), "weights": _plain(self.weights), "version": self.version,
                "validation": _plain(self.validation), "quantization": _plain(self.quantization)}


#: The type of each JSON key, as zoo writes it (``quantization`` may be absent).
_TYPES: dict[str, Any] = {"inputs": list[str], "labels": list[str], "preprocessing": dict[str, Any],
                          "source": dict[str, Any], "weights": dict[str, Any], "validation": dict[str, Any],
                          "quantization": dict[str, Any]}
KINDS = ("classifier", "regression", "detection", "segmentation", "instances", "embedding")
#: Bounds that no real model reaches and that keep a damaged file from asking for absurd buffers.
_MAX_SIDE = 16384
_MAX_TOKENS = 1 << 20


def _damaged(where: str, key: str, problem: str) -> InputError:
    return InputError(f"{where}: damaged zoo metadata, zoo.{key}: {problem}; export the model again with "
                      f"`zoo export`")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check(info: ModelInfo, where: str = "the model") -> None:
    """Every field the runtime reads, as the runtime needs it: a known kind and modality, named
    inputs and output, labels for a classifier (one threshold each for a multi-label one), and
    preprocessing within range (an image's size, mean and std, interpolation and crop; a text
    model's tokenizer file beside it, its hash and lengths; a sound model's front end)."""
    from zoo.card import CROP_MODES, INTERPOLATIONS, MODALITIES

    def bad(key: str, problem: str) -> InputError:
        return _damaged(where, key, problem)

    if info.kind not in KINDS:
        raise InputError(f"{where}: zoo metadata, zoo.kind: unknown kind {info.kind!r} (this zoo runs "
                         f"{', '.join(KINDS)}); upgrade zoo, or export the model again with `zoo export`")
    if info.modality not in MODALITIES:
        raise bad("modality", f"unknown modality {info.modality!r} (this zoo reads {', '.join(MODALITIES)})")
    if not info.inputs or len(set(info.inputs)) != len(info.inputs):
        raise bad("inputs", f"expected distinct input names, got {_show(list(info.inputs))}")
    if not info.output:
        raise bad("output", "no output name")
    if info.kind == "regression" and (not info.labels or len(set(info.labels)) != len(info.labels)):
        raise bad("labels", f"a regression names each of its outputs once, got {_show(list(info.labels))}")
    if info.kind == "detection":
        _check_detection(info, bad)
    if info.kind == "instances":
        _check_instances(info, bad)
    if info.kind in ("classifier", "detection", "segmentation", "instances"):
        if not info.labels:
            raise bad("labels", "a classifier without labels")
        repeated = sorted({label for label in info.labels if info.labels.count(label) > 1})
        if repeated:
            raise bad("labels", f"labels repeat: {_show(repeated)}")
        thresholds = info.source.get("thresholds")
        if thresholds is not None and (not check_type(thresholds, list[float]) or len(thresholds) != len(info.labels)
                                       or not all(0 <= t <= 1 for t in thresholds)):
            raise bad("source", f"a multi-label model needs one threshold in [0, 1] per label ({len(info.labels)}), "
                                f"got {_show(thresholds)}")
    p = info.preprocessing

    def need(key: str, annotation: Any, valid: Any = lambda value: True, what: str = "") -> Any:
        value = p.get(key)
        if not check_type(value, annotation) or not valid(value):
            raise bad("preprocessing", f"{key!r} must be {what or describe_type(annotation)}, got {_show(value)}")
        return value

    def optional(key: str, annotation: Any, valid: Any = lambda value: True, what: str = "") -> None:
        if p.get(key) is not None:
            need(key, annotation, valid, what)

    if info.modality == "text":
        need("tokenizer", str, lambda name: name not in ("", ".", "..") and "/" not in name and "\\" not in name,
             "the tokenizer's file name beside the model")
        need("tokenizer_sha256", str, lambda h: len(h) == 64 and all(c in "0123456789abcdef" for c in h),
             "a sha256 (64 hex digits)")
        need("max_length", int, lambda n: 0 < n <= _MAX_TOKENS, f"a positive integer up to {_MAX_TOKENS}")
        optional("pad_id", int, lambda n: n >= 0, "a token id (>= 0)")
        optional("pad_token", str)
        return
    if info.modality != "image" and not isinstance(p.get("front_end"), dict):
        raise bad("preprocessing", f"a {info.modality} model needs its front end ('front_end'), got "
                                   f"{_show(p.get('front_end'))}")
    optional("front_end", dict[str, Any], lambda f: isinstance(f.get("name"), str)
             and isinstance(f.get("modality"), str) and isinstance(f.get("params", {}), dict),
             "a front end (name, modality, params)")
    need("size", tuple[int, int], lambda hw: all(0 < side <= _MAX_SIDE for side in hw),
         f"[height, width], positive integers up to {_MAX_SIDE}")
    optional("resize", int, lambda n: 0 < n <= _MAX_SIDE, f"a positive integer up to {_MAX_SIDE}")
    finite = lambda values: len(values) in (1, 3) and all(math.isfinite(v) for v in values)  # noqa: E731
    mean = need("mean", list[float], finite, "1 or 3 finite numbers")
    need("std", list[float], lambda std: finite(std) and len(std) == len(mean) and all(v > 0 for v in std),
         f"{len(mean)} positive numbers, like mean")
    optional("interpolation", str, lambda name: name in INTERPOLATIONS, f"one of {', '.join(INTERPOLATIONS)}")
    optional("crop_mode", str, lambda name: name in CROP_MODES, f"one of {', '.join(CROP_MODES)}")


def _check_detection(info: ModelInfo, bad: Any) -> None:
    """A detector's post-processing record (what ``zoo.postprocess`` reads), within range."""
    source = info.source
    levels = source.get("levels")
    if not check_type(levels, list[int]) or not levels or not all(0 < n <= _MAX_SIDE * _MAX_SIDE for n in levels):
        raise bad("source", f"a detector needs 'levels', its points per pyramid level (positive integers), got "
                            f"{_show(levels)}")
    for key in ("score", "nms"):
        value = source.get(key)
        if not check_type(value, float) or not 0 <= value <= 1:
            raise bad("source", f"a detector's {key!r} threshold must be a number in [0, 1], got {_show(value)}")
    for key in ("candidates", "detections"):
        value = source.get(key)
        if not check_type(value, int) or not 0 < value <= _MAX_TOKENS:
            raise bad("source", f"a detector's {key!r} must be a positive integer, got {_show(value)}")


def _check_instances(info: ModelInfo, bad: Any) -> None:
    """An instance segmenter's record (what ``zoo.postprocess.kept_instances`` reads), within range."""
    source = info.source
    for key, top in (("detections", 255), ("mask_size", 1024)):  # objects are numbered in a uint8 mask
        value = source.get(key)
        if not check_type(value, int) or not 0 < value <= top:
            raise bad("source", f"an instance segmenter's {key!r} must be a positive integer, got {_show(value)}")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
