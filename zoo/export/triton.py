"""A Triton model repository from an exported model (``zoo export RUN --triton DIR``): the format
GPU fleets already run, written rather than invented.

::

    DIR/NAME/config.pbtxt     onnxruntime backend, dynamic batching, inputs and outputs named and
                              typed as the graph has them (the batch axis left to Triton)
    DIR/NAME/labels.txt       classifiers: class names in output order (Triton's classification
                              extension answers "score:index:label" with it)
    DIR/NAME/README.md        what a client sends and reads: the preprocessing, step by step
    DIR/NAME/zoo.json         the model's zoo metadata, for programs (zoo.modelinfo)
    DIR/NAME/1/model.onnx     the graph (and its external data files beside it; for a text model
                              the tokenizer file the client encodes with, which Triton ignores)

Triton runs the graph and nothing else: preprocessing (images resized, cropped and normalised;
texts tokenized; clips turned into log-mel images) happens in the client, exactly as zoo's
runtime does it; ``zoo.runtime.open_model(path).encode(items)`` gives the feeds in Python. NAME is
the one ``zoo serve`` gives the same file, so clients keep their URLs when moving to Triton.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ExportError
from zoo.modelinfo import ModelInfo
from zoo.modelname import NAME_PATTERN, served_name

__all__ = ["TritonRepository", "write_triton", "config_pbtxt"]

_TYPES = {"FLOAT": "TYPE_FP32", "FLOAT16": "TYPE_FP16", "DOUBLE": "TYPE_FP64", "INT64": "TYPE_INT64",
          "INT32": "TYPE_INT32", "INT16": "TYPE_INT16", "INT8": "TYPE_INT8", "UINT8": "TYPE_UINT8",
          "BOOL": "TYPE_BOOL", "STRING": "TYPE_STRING"}


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str
    dims: tuple[int, ...]  # -1: any size


@dataclass(frozen=True)
class TritonRepository:
    """What :func:`write_triton` wrote."""

    folder: Path  # DIR/NAME
    name: str
    version: str
    max_batch_size: int
    files: tuple[Path, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "name": self.name, "version": self.version,
                "max_batch_size": self.max_batch_size, "files": [str(f) for f in self.files]}


def _graph(path: Path) -> tuple[list[Tensor], list[Tensor]]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}

    def tensors(values: Sequence[Any]) -> list[Tensor]:
        out = []
        for value in values:
            kind = value.type.tensor_type
            name = onnx.TensorProto.DataType.Name(kind.elem_type)
            if name not in _TYPES:
                raise ExportError(f"{path}: {value.name} is {name}, which Triton's onnxruntime backend has no type for")
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in kind.shape.dim)
            out.append(Tensor(value.name, _TYPES[name], dims))
        return out

    return tensors([v for v in model.graph.input if v.name not in weights]), tensors(model.graph.output)


def config_pbtxt(name: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor], *, max_batch: int,
                 delay_us: int, labels: bool) -> tuple[str, int]:
    """config.pbtxt's text and its max_batch_size: batching when every tensor's first axis is free
    (Triton then owns that axis and the dims exclude it), none when the graph fixes it."""
    batched = max_batch > 0 and all(t.dims and t.dims[0] == -1 for t in (*inputs, *outputs))
    size = max_batch if batched else 0

    def block(kind: str, tensors: Sequence[Tensor]) -> list[str]:
        lines = [f"{kind} ["]
        for i, t in enumerate(tensors):
            dims = t.dims[1:] if batched else t.dims
            lines += ["  {", f'    name: "{t.name}"', f"    data_type: {t.data_type}",
                      f"    dims: [ {', '.join(str(d) for d in dims)} ]"]
            if labels and kind == "output":
                lines.append('    label_filename: "labels.txt"')
            lines.append("  }" + ("," if i < len(tensors) - 1 else ""))
        return lines + ["]"]

    lines = ["# Written by zoo export --triton: the graph alone; the client preprocesses (README.md).",
             f'name: "{name}"', 'platform: "onnxruntime_onnx"', 'backend: "onnxruntime"', f"max_batch_size: {size}",
             *block("input", inputs), *block("output", outputs)]
    if batched:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {delay_us}", "}"]
    lines += ["# No instance_group: Triton runs one instance per visible GPU, or on the CPU without one."]
    return "\n".join(lines) + "\n", size


def client_readme(name: str, version: str, info: ModelInfo, inputs: Sequence[Tensor], output: Tensor,
                  max_batch: int) -> str:
    """README.md: what to send and what comes back, from the model's own metadata."""
    p = info.preprocessing
    shapes = ", ".join(f"`{t.name}` {t.data_type.removeprefix('TYPE_')} {list(t.dims)}" for t in inputs)
    lines = [f"# {name}: a zoo model in a Triton model repository", "",
             f"Exported by zoo {info.version} from `{info.model}` ({info.kind}, {info.modality}, {info.precision}). "
             f"Triton runs the graph only: the client sends what the graph takes, preprocessed as below, exactly as "
             f"zoo's runtime does it (in Python: `zoo.runtime.open_model('{name}/{version}/model.onnx').encode(items)` "
             f"returns these feeds).", "", f"## Inputs ({shapes}; -1: any size, the first is the batch)", ""]
    if p.get("front_end"):
        front = p["front_end"]
        lines += [f"Each {info.modality} clip goes through zoo's `{front.get('name')}` front end with these parameters "
                  f"(the plugin that registers it computes them in numpy):", "", "```json",
                  json.dumps(front, indent=2, sort_keys=True), "```", "",
                  f"then, as an image of {p['size'][0]}x{p['size'][1]}: each channel minus {p['mean']}, divided by "
                  f"{p['std']}; float32, channels first.", ""]
    elif info.modality == "image":
        resize = p.get("resize") or min(p["size"])
        how = ("resize both sides" if p.get("crop_mode") == "squash" else
               f"resize the shorter side to {resize} px (the longer side in proportion, truncated)")
        lines += [f"1. Decode to RGB; {how} with {p.get('interpolation') or 'bilinear'} interpolation.",
                  f"2. Center-crop to {p['size'][0]}x{p['size'][1]} (height x width; offset rounded).",
                  "3. Scale to [0, 1] (pixel / 255), subtract the mean "
                  f"{p['mean']} and divide by the std {p['std']}, per RGB channel.",
                  "4. float32, channels first: [N, 3, H, W].", ""]
    else:
        lines += [f"Tokenize with `{version}/{p.get('tokenizer')}` (Hugging Face `tokenizers`), "
                  f"truncated to {p.get('max_length')} tokens; send `input_ids` and `attention_mask` as INT64 "
                  f"[N, L]. Requests batch together when their L is equal: pad to {p.get('max_length')} for the "
                  f"most batching.", ""]
    lines += [f"## Output `{output.name}` {output.data_type.removeprefix('TYPE_')} {list(output.dims)}", ""]
    if info.kind == "classifier":
        thresholds = info.source.get("thresholds")
        lines += ["Probabilities over the classes in `labels.txt` order " +
                  ("(independent sigmoids: multi-label; a label applies when its probability reaches its "
                   f"threshold: {dict(zip(info.labels, thresholds))})." if thresholds is not None else
                   "(a softmax: they sum to 1)."),
                  "Ask Triton for `classification: K` on the output to get the top K as \"score:index:label\".", ""]
    else:
        lines += ["One embedding per input.", ""]
    lines += ["## Serving", "", f"`max_batch_size: {max_batch}`, dynamic batching on: "
              f"`tritonserver --model-repository=DIR`, then `POST /v2/models/{name}/infer` (KServe v2), the same "
              f"request `zoo serve` takes for these tensors.", ""]
    return "\n".join(lines)


def write_triton(model: str | Path, repository: str | Path, *, name: str | None = None, version: str = "1",
                 max_batch: int = 32, delay_us: int = 5000) -> TritonRepository:
    """Write ``model`` (an ONNX file from ``zoo export``) into the Triton repository ``repository``
    as ``NAME/VERSION``; NAME defaults to the one ``zoo serve`` gives it."""
    from zoo.atomic import atomic_write, atomic_write_bytes
    from zoo.onnxgraph.onnxfile import data_files, read_info

    model = Path(model)
    info = read_info(model)
    name = name or served_name(model)
    for what, value in (("name", name), ("version", version)):
        if not NAME_PATTERN.match(value) or (what == "version" and not value.isdigit()):
            raise ExportError(f"--triton: the model {what} {value!r} is not usable in a Triton repository "
                              f"({'a whole number' if what == 'version' else 'letters, digits, . _ -'})")
    inputs, outputs = _graph(model)
    output = next((t for t in outputs if t.name == info.output), outputs[0])
    config, size = config_pbtxt(name, inputs, outputs, max_batch=max_batch, delay_us=delay_us,
                                labels=info.kind == "classifier")
    folder = Path(repository) / name
    fix = "choose another --triton folder"

    def copy(source: Path, target: Path) -> Path:
        with source.open("rb") as handle:
            return atomic_write(target, lambda out: shutil.copyfileobj(handle, out, 1 << 22), mode=0o644, fix=fix)

    def text(target: Path, content: str) -> Path:
        return atomic_write_bytes(target, content.encode("utf-8"), mode=0o644, fix=fix)

    files = [copy(f, folder / version / f.name) for f in data_files(model)]
    if info.preprocessing.get("tokenizer"):
        tokenizer = info.preprocessing["tokenizer"]  # beside the graph, where zoo's runtime looks for it
        files.append(copy(model.parent / tokenizer, folder / version / tokenizer))
    if info.kind == "classifier":
        files.append(text(folder / "labels.txt", "".join(f"{label}\n" for label in info.labels)))
    files.append(text(folder / "zoo.json", json.dumps(info.to_dict(), indent=2, ensure_ascii=False) + "\n"))
    files.append(text(folder / "README.md", client_readme(name, version, info, inputs, output, size)))
    files.append(copy(model, folder / version / "model.onnx"))
    files.append(text(folder / "config.pbtxt", config))  # last: a repository with a config is complete
    return TritonRepository(folder, name, version, size, tuple(files))
