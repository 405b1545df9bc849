"""Run an exported model with onnxruntime alone: no PyTorch, no transformers.

The ONNX file's zoo metadata (:mod:`zoo.modelinfo`) says how to preprocess the inputs
(the same numpy/PIL code the training used, or the tokenizer file written beside the model) and
how to read the output (class labels, or embeddings). This module imports onnxruntime, numpy,
PIL and tokenizers, and never torch: a slim deployment installs ``zoo`` without using PyTorch.

Execution providers: TensorRT, then CUDA, when onnxruntime-gpu is installed and a GPU is present,
otherwise the CPU; ``provider=`` picks one by name (``cpu``, ``cuda``, ``tensorrt`` or the full
onnxruntime name).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError, ZooError
from zoo.modelinfo import ModelInfo
from zoo.postprocess import picture_size

#: The kinds whose answers are about a picture's pixels (they are given its size).
DENSE = ("detection", "segmentation", "instances")

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["OnnxModel", "Preprocessor", "Prediction", "Predictions", "Box", "open_model", "predict", "choose_providers",
           "expand_images", "read_texts", "embedding_dict", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

_PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
}
_GPU_FIRST = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


# --------------------------------------------------------------------------- providers

def _gpu_present() -> bool:
    """An NVIDIA GPU this process may use, seen without CUDA libraries (onnxruntime lists
    providers it was built with, not devices)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(Path(p).exists() for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version")) or os.name == "nt"


#: How to get a working onnxruntime: said alike when it is missing and when it is broken.
INSTALL_HINT = "pip install 'zoo[cpu]' (or 'zoo[gpu]' for CUDA, never both)"


def onnxruntime_module(submodule: str = "") -> Any:
    """onnxruntime (or one of its submodules, ``"quantization"``), or one line on how to install it
    (it is an extra: ``zoo[cpu]`` or ``zoo[gpu]``). zoo imports onnxruntime only through here, so a
    missing package and one that is present but cannot load (a mismatched onnxruntime-gpu whose
    CUDA libraries are absent, a damaged install: ImportError or OSError from its native library)
    get the same hint instead of a traceback."""
    import importlib

    name = "onnxruntime" + (f".{submodule}" if submodule else "")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == "onnxruntime":
            raise ZooError(f"onnxruntime is not installed, and ONNX models run on it: {INSTALL_HINT}") from None
        raise ZooError(_broken(name, exc)) from None
    except (ImportError, OSError) as exc:
        raise ZooError(_broken(name, exc)) from None


def _broken(name: str, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return (f"onnxruntime is installed but {name} cannot be imported ({type(exc).__name__}: {first}); "
            f"reinstall it: pip uninstall -y onnxruntime onnxruntime-gpu, then {INSTALL_HINT}")


def choose_providers(requested: str | None = None) -> list[str]:
    """The providers to ask onnxruntime for, best first, always ending with the CPU."""
    ort = onnxruntime_module()

    available = ort.get_available_providers()
    if requested:
        name = _PROVIDER_NAMES.get(requested.lower(), requested)
        if name not in available:
            hint = (" install the gpu extra (`pip install 'zoo[gpu]'`, onnxruntime-gpu in place of onnxruntime)"
                    if name in _GPU_FIRST else "")
            raise InputError(f"execution provider {requested!r} is not available in this onnxruntime "
                             f"(available: {', '.join(available)});{hint or ' choose one of those'}")
        return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    chosen = [p for p in _GPU_FIRST if p in available] if _gpu_present() else []
    return [*chosen, "CPUExecutionProvider"]


# --------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class Box:
    """One detected object: its class, score, and ``[x0, y0, x1, y1]`` in the picture's pixels; an
    instance segmenter's also ``pixels``: its mask's area (the mask is the prediction's ``mask``,
    where this object's number is)."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    pixels: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "score": round(self.score, 6), "box": [round(v, 2) for v in self.box]}
        if self.pixels is not None:
            out["pixels"] = self.pixels
        return out


@dataclass(frozen=True)
class Prediction:
    """Top-k classes for one input, best first; for a multi-label model also ``labels``: every label
    whose probability reaches its threshold (none, one or several); for a regression ``values``:
    each target's number, in the units it was trained in (and no ``top``); for a detector
    ``boxes``: the kept detections, best first (and no ``top``); for a segmenter ``mask``: each
    pixel's class index in the picture's own size (HxW uint8) and ``shares``: each class's share
    of the pixels (and no ``top``); for an instance segmenter ``boxes`` and ``mask``: each pixel's
    object, numbered from 1 in the boxes' order (0: none)."""

    input: str
    top: tuple[tuple[str, float], ...]
    labels: tuple[str, ...] | None = None
    values: tuple[tuple[str, float], ...] | None = None
    boxes: tuple[Box, ...] | None = None
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)
    shares: tuple[tuple[str, float], ...] | None = None

    @property
    def label(self) -> str:
        if not self.top:
            what = ("a detector predicts boxes" if self.boxes is not None else "a segmenter predicts a mask"
                    if self.shares is not None else "a regression predicts numbers (values)")
            raise InputError(f"{self.input}: {what}, not a label")
        return self.top[0][0]

    def to_dict(self) -> dict[str, Any]:
        if self.shares is not None:
            return {"input": self.input, "shares": {label: round(share, 6) for label, share in self.shares}}
        if self.boxes is not None:
            return {"input": self.input, "boxes": [b.to_dict() for b in self.boxes]}
        if self.values is not None:
            return {"input": self.input, "values": dict(self.values)}
        out: dict[str, Any] = {"input": self.input,
                               "predictions": [{"label": l, "probability": p} for l, p in self.top]}
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out


@dataclass(frozen=True)
class Predictions:
    """What :func:`predict` returns: top-k per input for a classifier, a matrix for an embedding model."""

    model: str
    info: ModelInfo
    providers: tuple[str, ...]
    inputs: tuple[str, ...]
    predictions: tuple[Prediction, ...] = ()
    embeddings: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "kind": self.info.kind, "precision": self.info.precision,
                               "providers": list(self.providers)}
        if self.embeddings is not None:
            out["embeddings"] = [embedding_dict(i, row) for i, row in zip(self.inputs, self.embeddings)]
        else:
            out["predictions"] = [p.to_dict() for p in self.predictions]
        return out


class Preprocessor:
    """Inputs as a zoo graph takes them, from its metadata alone: images (paths, PIL images,
    arrays) or texts (strings). ``folder`` holds the model's tokenizer file."""

    def __init__(self, info: ModelInfo, folder: Path, where: str = "the model") -> None:
        self.info = info
        self.folder = folder
        self.where = where
        self._tokenizer: Any = None

    def __call__(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        if isinstance(items, (str, bytes)) or not len(items):
            raise InputError(f"{self.where}: give a non-empty list of inputs")
        if self.info.preprocessing.get("front_end"):
            return {self.info.inputs[0]: self._converted(items)}
        if self.info.modality == "image":
            return {self.info.inputs[0]: self._images(items)}
        if self.info.modality == "text":
            return self._texts(items)
        raise InputError(f"{self.where}: {self.info.modality} inputs are not supported by this zoo")

    def _spec(self) -> Any:
        from zoo.card import FrontEndSpec, InputSpec

        p = self.info.preprocessing
        front_end = FrontEndSpec.from_dict(p["front_end"]) if p.get("front_end") else None
        return InputSpec(size=tuple(p["size"]), resize=p.get("resize"), mean=tuple(p["mean"]), std=tuple(p["std"]),
                         interpolation=p.get("interpolation"), crop_mode=p.get("crop_mode"), front_end=front_end)

    def _converted(self, items: Sequence[Any]) -> np.ndarray:
        """Another modality (sounds) through the front end the metadata declares, in numpy: the same
        code and parameters the model was trained with (``zoo.frontend``)."""
        from zoo.frontend import batch

        try:
            return batch(items, self._spec())
        except InputError as exc:
            raise InputError(f"{exc} ({self.where} takes {self.info.modality})") from None

    def _images(self, items: Sequence[Any]) -> np.ndarray:
        from zoo.preprocess import image_batch

        spec = self._spec()
        try:
            return image_batch(items, spec)
        except InputError as exc:
            raise InputError(f"{exc} ({self.where} takes images)") from None

    def _texts(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        import numpy as np

        bad = next((item for item in items if not isinstance(item, str)), None)
        if bad is not None:
            raise InputError(f"{self.where} takes texts, not a {type(bad).__name__}")
        encodings = self.tokenizer.encode_batch(list(items))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask}

    @property
    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` written beside the model, checked against its recorded hash."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            p = self.info.preprocessing
            path = self.folder / p["tokenizer"]
            if not path.is_file():
                raise InputError(f"{self.where}: its tokenizer {path.name} is missing; keep it beside the model "
                                 f"(zoo export writes both)")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if p.get("tokenizer_sha256") and digest != p["tokenizer_sha256"]:
                raise InputError(f"{path}: not the tokenizer {self.where} was exported with (sha256 {digest[:12]}, "
                                 f"expected {p['tokenizer_sha256'][:12]}); export the model again")
            try:
                tokenizer = Tokenizer.from_file(str(path))
            except Exception as exc:  # tokenizers raises plain Exception for a bad file
                raise InputError(f"{path}: not a readable tokenizer ({exc}); export the model again") from None
            tokenizer.enable_truncation(int(p["max_length"]))
            # "max_length": a text tower trained on texts padded to it (SigLIP's) is fed so
            full = int(p["max_length"]) if p.get("padding") == "max_length" else None
            tokenizer.enable_padding(pad_id=int(p.get("pad_id", 0)), pad_token=p.get("pad_token", "[PAD]"), length=full)
            self._tokenizer = tokenizer
        return self._tokenizer


class OnnxModel:
    """An exported zoo model in an onnxruntime session; build it with :func:`open_model`."""

    def __init__(self, path: Path, session: Any, info: ModelInfo) -> None:
        self.path = path
        self.session = session
        self.info = info
        self.encode = Preprocessor(info, path.parent, where=path.name)
        names = [i.name for i in session.get_inputs()]
        if list(info.inputs) != names:
            raise InputError(f"{path}: its metadata names inputs {list(info.inputs)} but the graph takes {names}; "
                             f"export it again")
        outputs = {o.name: o.shape for o in session.get_outputs()}
        if info.output not in outputs:
            raise InputError(f"{path}: its metadata names the output {info.output!r} but the graph gives "
                             f"{list(outputs)}; export it again with `zoo export`")
        shape = outputs[info.output]
        width = (shape[1] if info.kind == "segmentation" else shape[-1]) if shape else None
        batch = session.get_inputs()[0].shape
        #: a graph traced for one input at a time (its batch axis fixed at 1: Mask R-CNN's loops)
        self.one_at_a_time = bool(batch) and batch[0] == 1
        if isinstance(width, int):  # else a dynamic size: checked on the first answer (read())
            self._check_labels(width)

    def _check_labels(self, width: int) -> None:
        """A classifier's labels (a regression's target names) name its outputs one for one: fewer
        would fail on an index, more would answer with names the graph never scored; a detector's
        rows are a box's four numbers, then a score per label; a segmenter scores each label at
        every pixel."""
        if self.info.kind == "instances":
            side = int(self.info.source["mask_size"])
            if width != 6 + side * side:
                raise InputError(f"{self.path}: its metadata says masks of {side}x{side} but the graph's rows hold "
                                 f"{width - 6} mask numbers after each box, score and class; export the model again "
                                 f"with `zoo export`")
            return
        if self.info.kind == "detection" and width != 4 + len(self.info.labels):
            raise InputError(f"{self.path}: its metadata lists {len(self.info.labels)} labels but the graph's rows hold "
                             f"{width - 4} scores after each box; the labels do not belong to this graph: export the "
                             f"model again with `zoo export`")
        if self.info.kind in ("classifier", "regression", "segmentation") and width != len(self.info.labels):
            what = ("target names", "numbers") if self.info.kind == "regression" else ("labels", "classes")
            raise InputError(f"{self.path}: its metadata lists {len(self.info.labels)} {what[0]} but the graph scores "
                             f"{width} {what[1]}; the {what[0]} do not belong to this graph: export the model again "
                             f"with `zoo export`")

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers the session really uses (onnxruntime drops the ones that failed to start)."""
        return tuple(self.session.get_providers())

    # ----------------------------------------------------------------- running

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """One batch of encoded inputs through the graph: probabilities or embeddings (a graph
        that takes one input at a time runs each alone, its rows stacked)."""
        count = len(next(iter(feeds.values())))
        if self.one_at_a_time and count > 1:
            import numpy as np

            return np.concatenate([self.session.run([self.info.output], {k: v[i:i + 1] for k, v in feeds.items()})[0]
                                   for i in range(count)])
        return self.session.run([self.info.output], feeds)[0]

    def outputs(self, items: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """Preprocess and run ``items`` in batches."""
        import numpy as np

        parts = [self.run(self.encode(items[i:i + batch_size])) for i in range(0, len(items), batch_size)]
        if not parts:
            raise InputError(f"{self.path.name}: no inputs given")
        return np.concatenate(parts)

    def predict(self, items: Sequence[Any], top_k: int = 5, names: Sequence[str] | None = None) -> list[Prediction]:
        """Top-k labels with probabilities for each input (classifiers), each target's number
        (regressions), or the kept boxes (detectors)."""
        if self.info.kind == "embedding":
            raise InputError(f"{self.path.name} is an embedding model (no labels): use embed()")
        names = list(names) if names is not None else [_describe(item) for item in items]
        sizes = [picture_size(item) for item in items] if self.info.kind in DENSE else None
        return self.read(self.outputs(items), names, top_k, sizes=sizes)

    def read(self, probabilities: np.ndarray, names: Sequence[str], top_k: int = 5,
             sizes: Sequence[tuple[int, int]] | None = None) -> list[Prediction]:
        """Predictions from the graph's probabilities, one row per input (``zoo serve`` runs the
        graph itself, in batches, and reads its rows here like :meth:`predict`); a detector's
        rows per anchor point become each picture's kept boxes, a segmenter's scores per pixel its
        mask, ``sizes`` its (width, height)."""
        import numpy as np

        self._check_labels(probabilities.shape[1] if self.info.kind == "segmentation" else probabilities.shape[-1])
        if self.info.kind == "segmentation":
            return [self._mask(name, scores, size) for name, scores, size in zip(names, probabilities, sizes or ())]
        if self.info.kind == "instances":
            return [self._instances(name, rows, size) for name, rows, size in zip(names, probabilities, sizes or ())]
        if self.info.kind == "detection":
            return [self._boxes(name, rows, size) for name, rows, size in zip(names, probabilities, sizes or ())]
        if self.info.kind == "regression":  # the graph ends in the targets' own units
            return [Prediction(name, (), values=tuple((target, float(v)) for target, v in zip(self.info.labels, row)))
                    for name, row in zip(names, probabilities)]
        k = max(1, min(top_k, probabilities.shape[1]))
        thresholds = self.info.source.get("thresholds")  # a multi-label model's, in label order
        result = []
        for name, row in zip(names, probabilities):
            best = np.argsort(-row, kind="stable")[:k]
            chosen = (tuple(label for label, p, t in zip(self.info.labels, row, thresholds) if p >= t)
                      if thresholds is not None else None)
            result.append(Prediction(name, tuple((self.info.labels[i], float(row[i])) for i in best), chosen))
        return result

    def _boxes(self, name: str, rows: np.ndarray, size: tuple[int, int]) -> Prediction:
        """One picture's kept detections (``zoo.postprocess``: FCOS's selection, non-maximum
        suppression and scaling, from the metadata)."""
        from zoo.postprocess import kept_detections

        found = kept_detections(rows, self.info.source["levels"], self.info.source, self.info.preprocessing["size"],
                                size)
        return Prediction(name, (), boxes=tuple(Box(self.info.labels[int(c)], float(s), tuple(float(v) for v in b))
                                                for b, s, c in zip(found["boxes"], found["scores"], found["labels"])))

    def _instances(self, name: str, rows: np.ndarray, size: tuple[int, int]) -> Prediction:
        """One picture's objects: boxes, classes, scores, and their masks pasted into the picture
        as one mask of object numbers (``zoo.postprocess``)."""
        from zoo.postprocess import instance_mask, kept_instances

        found = kept_instances(rows, self.info.preprocessing["size"], size)
        mask = instance_mask(found["masks"], found["scores"])
        boxes = tuple(Box(self.info.labels[int(c)], float(s), tuple(float(v) for v in b), int((mask == k + 1).sum()))
                      for k, (b, s, c) in enumerate(zip(found["boxes"], found["scores"], found["labels"])))
        return Prediction(name, (), boxes=boxes, mask=mask)

    def _mask(self, name: str, scores: np.ndarray, size: tuple[int, int]) -> Prediction:
        """One picture's mask: the best class of each pixel, scaled to the picture (``zoo.postprocess``)."""
        import numpy as np

        from zoo.postprocess import class_shares, mask_in_picture

        mask = mask_in_picture(scores.argmax(0).astype(np.uint8), size)
        shares = class_shares(mask, len(self.info.labels))
        return Prediction(name, (), mask=mask, shares=tuple((label, float(v)) for label, v in zip(self.info.labels, shares)))

    def embed(self, items: Sequence[Any]) -> np.ndarray:
        """One row per input: embeddings (or, for a classifier, its probabilities)."""
        return self.outputs(items)


def _over(prediction: Prediction, min_score: float) -> Prediction:
    """``prediction`` with only the boxes scoring at least ``min_score`` (an instance segmenter's
    mask losing the others: its objects are numbered best first, so those kept keep their numbers)."""
    if prediction.boxes is None:
        return prediction
    boxes = tuple(b for b in prediction.boxes if b.score >= min_score)
    if prediction.mask is None or prediction.shares is not None:
        return replace(prediction, boxes=boxes)
    mask = prediction.mask.copy()
    mask[mask > len(boxes)] = 0
    return replace(prediction, boxes=boxes, mask=mask)


def open_model(path: str | Path, *, provider: str | None = None, threads: int | None = None,
               session_config: Mapping[str, str] | None = None) -> OnnxModel:
    """An :class:`OnnxModel` for an ONNX file exported by zoo; bad files are an InputError.
    ``session_config``: onnxruntime session config entries (``zoo serve`` turns thread spinning off)."""
    ort = onnxruntime_module()

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file" + ("" if not path.is_dir() else " (it is a folder)"))
    with path.open("rb") as handle:
        head = handle.read(2)
    if path.stat().st_size < 16 or head[:1] != b"\x08":  # an ONNX file starts with ir_version (field 1)
        raise InputError(f"{path}: not an ONNX model file; export one with `zoo export`")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # fatal only: no provider chatter on stdout, and a file it cannot load is said once, below,
    # not also in onnxruntime's own coloured log line
    options.log_severity_level = 4
    if threads:
        options.intra_op_num_threads = threads
    for key, value in (session_config or {}).items():
        options.add_session_config_entry(key, value)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=choose_providers(provider))
    except InputError:
        raise
    except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...) for bad files
        raise InputError(f"{path}: onnxruntime cannot load it ({onnxruntime_reason(exc)}); the file (or its .data "
                         f"file) is damaged, truncated or not an ONNX model: export it again with `zoo export`") from None
    props = session.get_modelmeta().custom_metadata_map
    return OnnxModel(path, session, ModelInfo.from_props(props, where=str(path)))


def onnxruntime_reason(exc: BaseException) -> str:
    """onnxruntime's message without its frame: ``[ONNXRuntimeError] : 1 : FAIL : file.cc:79
    Class::Function(args) text`` -> ``text``, on one line."""
    import re

    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.rsplit("[ONNXRuntimeError] : ", 1)[-1]
    text = re.sub(r"^\d+ : [A-Z_]+ : ", "", text)
    text = re.sub(r"^\S+\.(?:cc|cpp|h):\d+ \S+?(?:\(.*?\))? ", "", text)
    return text[:300]


# --------------------------------------------------------------------------- inputs

def expand_images(arguments: Sequence[str | Path]) -> list[Path]:
    """Image files from files, folders (recursively, image suffixes only) and glob patterns, in order."""
    return expand_files(arguments, "image")


def expand_files(arguments: Sequence[str | Path], modality: str) -> list[Path]:
    """Files of ``modality`` (images; sounds, by the suffixes their front end reads) from files,
    folders (recursively, those suffixes only) and glob patterns, in order."""
    if modality == "image":
        suffixes: tuple[str, ...] = IMAGE_SUFFIXES
    else:
        from zoo.frontend import suffixes as front_end_suffixes

        suffixes = front_end_suffixes(modality)
    what = "image" if modality == "image" else f"{modality}"
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                raise InputError(f"{path}: no {what} files in this folder ({', '.join(suffixes[:4])}...)")
            found += files
        elif glob.has_magic(str(argument)):
            files = sorted(Path(p) for p in glob.glob(str(argument), recursive=True) if Path(p).is_file())
            if not files:
                raise InputError(f"{argument}: the pattern matches no files")
            found += files
        else:
            raise InputError(f"{argument}: no such {what} file, folder or pattern (this model takes {what} inputs)")
    return found


def read_texts(path: str | Path) -> list[str]:
    """Texts from a UTF-8 file, one per line; blank lines are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such text file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (give one text per line)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    return [line for line in lines if line.strip()]


def embedding_dict(name: str, row: Sequence[float]) -> dict[str, Any]:
    """One input's embedding as ``zoo predict --json`` prints it (and ``zoo serve`` answers it)."""
    return {"input": name, "embedding": [float(v) for v in row]}


def _describe(item: Any) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    return f"<{type(item).__name__}>"


def predict(model: str | Path | OnnxModel, inputs: Sequence[Any], *, top_k: int = 5,
            provider: str | None = None, min_score: float = 0.0) -> Predictions:
    """Run an exported model on images (paths, folders, globs, arrays) or texts.

    Classifiers give top-k labels with probabilities, regressions each target's number, detectors
    each picture's kept boxes (those scoring at least ``min_score``), segmenters each picture's
    mask and its classes' shares of the pixels; embedding models give one row per input.
    """
    onnx_model = model if isinstance(model, OnnxModel) else open_model(model, provider=provider)
    if not inputs:
        raise InputError("no inputs given: pass images (files, folders, globs) or texts")
    items: list[Any] = list(inputs)
    if onnx_model.info.modality == "image":
        items = [p for part in items for p in (expand_images([part]) if isinstance(part, (str, Path)) else [part])]
    elif onnx_model.info.preprocessing.get("front_end"):
        items = [p for part in items for p in (expand_files([part], onnx_model.info.modality)
                                               if isinstance(part, (str, Path)) else [part])]
    names = tuple(_describe(item) for item in items)
    base = {"model": str(onnx_model.path), "info": onnx_model.info, "providers": onnx_model.providers,
            "inputs": names}
    if onnx_model.info.kind != "embedding":
        found = onnx_model.predict(items, top_k=top_k, names=names)
        if min_score > 0:
            found = [_over(p, min_score) for p in found]
        return Predictions(**base, predictions=tuple(found))
    return Predictions(**base, embeddings=onnx_model.embed(items))
