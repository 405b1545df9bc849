"""The KServe / Triton v2 inference protocol, so the clients written for those servers work here.

``POST /v2/models/NAME[/versions/V]/infer`` takes either

- the graph's own tensors, by the names and types ``GET /v2/models/NAME`` lists (``pixel_values``
  FP32 [N, 3, H, W], already preprocessed; or ``input_ids`` and ``attention_mask`` INT64 [N, L]):
  the same request a Triton server running the model repository of ``zoo export --triton`` takes;
- or one BYTES tensor named after the model's modality (``image``, ``text``, ``audio``): each
  element a file's bytes (base64 in JSON, raw in the binary extension) or a UTF-8 text, which this
  server preprocesses as ``zoo predict`` does.

It answers the graph's output (``probabilities`` or ``embedding``), FP32 [N, D], or, with the
output parameter ``classification: K`` (Triton's classification extension), BYTES [N, K] strings
``"score:index:label"``. Tensors travel as JSON ``data`` or in Triton's binary extension (an
``Inference-Header-Content-Length`` header, the JSON, then the raw little-endian bytes; BYTES
elements each prefixed by a 4-byte length), per input as the request says and per output when
``binary_data`` (or the request's ``binary_data_output``) asks for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.serve.errors import bad_request
from zoo.serve.inputs import Item

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from zoo.serve.models import ServedModel

__all__ = ["InferRequest", "parse_infer", "model_metadata", "encode_response", "HEADER_LENGTH"]

HEADER_LENGTH = "inference-header-content-length"
_NUMPY = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
          "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16", "FP32": "float32",
          "FP64": "float64"}
_ONNX = {"tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(int8)": "INT8", "tensor(int16)": "INT16",
         "tensor(int32)": "INT32", "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32",
         "tensor(double)": "FP64", "tensor(string)": "BYTES"}


@dataclass(frozen=True)
class Tensor:
    """A graph input or output as v2 metadata lists it (-1 for a dimension of any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _tensors(nodes: Sequence[Any]) -> list[Tensor]:
    return [Tensor(n.name, _ONNX.get(n.type, n.type), tuple(d if isinstance(d, int) else -1 for d in n.shape))
            for n in nodes]


def graph_inputs(served: ServedModel) -> list[Tensor]:
    return _tensors(served.model.session.get_inputs())


def graph_output(served: ServedModel) -> Tensor:
    outputs = {t.name: t for t in _tensors(served.model.session.get_outputs())}
    return outputs[served.info.output]


def model_metadata(served: ServedModel, versions: Sequence[str]) -> dict[str, Any]:
    """``GET /v2/models/NAME``: the v2 fields, and zoo's own (kind, labels, sha256) under ``parameters``."""
    raw = Tensor(served.info.modality, "BYTES", (-1,))
    return {"name": served.name, "versions": list(versions), "platform": "onnxruntime_onnx",
            "inputs": [t.to_dict() for t in graph_inputs(served)] + [raw.to_dict()],
            "outputs": [graph_output(served).to_dict()],
            "parameters": {"kind": served.info.kind, "modality": served.info.modality,
                           "labels": list(served.info.labels), "sha256": served.sha256, "version": served.version,
                           "preprocessing": dict(served.info.preprocessing)}}


@dataclass
class Output:
    """An output the request asked for."""

    name: str
    classification: int = 0
    binary: bool = False


@dataclass
class InferRequest:
    """A parsed v2 request: items (raw inputs) or feeds (the graph's tensors), and what to answer."""

    id: str | None
    size: int
    outputs: list[Output]
    items: list[Item] | None = None
    feeds: dict[str, np.ndarray] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_infer(body: bytes, headers: Mapping[str, str], served: ServedModel) -> InferRequest:
    """The request in ``body`` (JSON, or JSON and binary tensors), checked against the model."""
    header, binary = _split(body, headers)
    try:
        data = json.loads(header)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"the inference request is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
        raise bad_request('a v2 inference request needs "inputs": a list of tensors, each with "name", "datatype", '
                          '"shape" and "data" (GET /v2/models/NAME lists them)')
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise bad_request('"parameters" must be an object')
    arrays: dict[str, Any] = {}
    offset = 0
    for index, tensor in enumerate(data["inputs"]):
        name, values, offset = _input(tensor, index, binary, offset)
        if name in arrays:
            raise bad_request(f"input {name!r} is given twice")
        arrays[name] = values
    if offset != len(binary):
        raise bad_request(f"{len(binary) - offset} bytes of binary data beyond the inputs' binary_data_size")
    outputs = _outputs(data.get("outputs"), served, bool(parameters.get("binary_data_output", False)))
    request_id = data.get("id")
    raw_name = served.info.modality
    if set(arrays) == {raw_name}:
        items = _items(arrays[raw_name], raw_name, served)
        return InferRequest(request_id, len(items), outputs, items=items, parameters=parameters)
    feeds = _feeds(arrays, served)
    return InferRequest(request_id, len(next(iter(feeds.values()))), outputs, feeds=feeds, parameters=parameters)


def _split(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, bytes]:
    length = headers.get(HEADER_LENGTH)
    if length is None:
        return body, b""
    if not length.strip().isdigit() or int(length) > len(body):
        raise bad_request(f"{HEADER_LENGTH}: {length!r} is not the length of the JSON at the start of the body "
                          f"({len(body)} bytes)")
    return body[:int(length)], body[int(length):]


def _input(tensor: Any, index: int, binary: bytes, offset: int) -> tuple[str, tuple[str, tuple[int, ...], Any], int]:
    """(name, (datatype, shape, values), new offset) for one input; values are a flat list, or
    bytes from the binary part."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise bad_request(f'inputs[{index}] needs a "name", a "datatype", a "shape" and "data"')
    name = tensor["name"]
    datatype = tensor.get("datatype")
    shape = tensor.get("shape")
    if datatype not in _NUMPY and datatype != "BYTES":
        raise bad_request(f"input {name!r}: datatype {datatype!r} is not a v2 datatype "
                          f"({', '.join([*_NUMPY, 'BYTES'])})")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape) or not shape:
        raise bad_request(f'input {name!r}: "shape" must be a list of sizes, the first the batch, '
                          f"e.g. [1, 3, 224, 224]")
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise bad_request(f"input {name!r}: binary_data_size {size!r} runs past the binary data "
                              f"({len(binary) - offset} bytes left)")
        return name, (datatype, tuple(shape), binary[offset:offset + size]), offset + size
    if "data" not in tensor:
        raise bad_request(f'input {name!r} has no "data" (nor a binary_data_size parameter)')
    return name, (datatype, tuple(shape), _flat(tensor["data"])), offset


def _flat(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if all(not isinstance(v, list) for v in data):
        return data
    return [v for part in data for v in _flat(part)]


def _bytes_elements(values: Any, count: int, name: str) -> list[bytes | str]:
    """A BYTES tensor's elements: strings from JSON, or length-prefixed bytes from the binary part."""
    if not isinstance(values, (bytes, bytearray)):
        if len(values) != count:
            raise bad_request(f"input {name!r}: {len(values)} elements for a shape of {count}")
        return list(values)
    elements, at = [], 0
    while at < len(values):
        if at + 4 > len(values):
            raise bad_request(f"input {name!r}: a truncated BYTES element (4-byte length prefixes, then the bytes)")
        (length,) = struct.unpack_from("<I", values, at)
        elements.append(bytes(values[at + 4:at + 4 + length]))
        at += 4 + length
    if at != len(values) or len(elements) != count:
        raise bad_request(f"input {name!r}: {len(elements)} BYTES elements for a shape of {count}")
    return elements


def _items(tensor: tuple[str, tuple[int, ...], Any], name: str, served: ServedModel) -> list[Item]:
    datatype, shape, values = tensor
    if datatype != "BYTES" or len(shape) != 1:
        raise bad_request(f"input {name!r} is BYTES of shape [N]: one {name} per element")
    items = []
    for i, element in enumerate(_bytes_elements(values, shape[0], name)):
        where = f"{name}[{i}]"
        if served.info.modality == "text":
            try:
                text = element.decode("utf-8") if isinstance(element, bytes) else element
            except UnicodeDecodeError:
                raise bad_request(f"{where}: not UTF-8 text") from None
            if not isinstance(text, str):
                raise bad_request(f"{where}: a text element must be a string")
            items.append(Item(text, text=text))
        elif isinstance(element, bytes):
            items.append(Item(where, data=element))
        else:
            encoded = element.get("b64") if isinstance(element, dict) else element
            try:
                items.append(Item(where, data=base64.b64decode(encoded, validate=True)))
            except (binascii.Error, ValueError, TypeError):
                raise bad_request(f"{where}: in JSON, a file is a base64 string (or send it raw in the binary "
                                  f"extension)") from None
    return items


def _feeds(arrays: dict[str, tuple[str, tuple[int, ...], Any]], served: ServedModel) -> dict[str, np.ndarray]:
    """The graph's inputs as arrays of the graph's types and shapes, or a 400 saying what differs."""
    import numpy as np

    expected = {t.name: t for t in graph_inputs(served)}
    if set(arrays) != set(expected):
        raise bad_request(f"model {served.name!r} takes the tensors {', '.join(expected)} (preprocessed), or one "
                          f"BYTES input {served.info.modality!r} (raw); got {', '.join(arrays)}")
    feeds = {}
    for name, (datatype, shape, values) in arrays.items():
        spec = expected[name]
        if datatype == "BYTES":
            raise bad_request(f"input {name!r} is {spec.datatype}, not BYTES")
        try:
            if isinstance(values, (bytes, bytearray)):
                array = np.frombuffer(values, dtype=np.dtype(_NUMPY[datatype]).newbyteorder("<"))
            else:
                array = np.asarray(values, dtype=_NUMPY[datatype])
        except (TypeError, ValueError) as exc:
            raise bad_request(f"input {name!r}: data that is not {datatype} ({exc})") from None
        if array.size != math.prod(shape):
            raise bad_request(f"input {name!r}: {array.size} values for shape {list(shape)} ({math.prod(shape)})")
        array = array.reshape(shape)
        if len(shape) != len(spec.shape) or any(d not in (-1, s) for d, s in zip(spec.shape, shape)):
            raise bad_request(f"input {name!r}: shape {list(shape)}, and the graph takes {list(spec.shape)} "
                              f"(-1: any size)")
        if datatype != spec.datatype:
            if _kind(datatype) != _kind(spec.datatype):
                raise bad_request(f"input {name!r} is {spec.datatype}, not {datatype}")
            array = array.astype(_NUMPY[spec.datatype])
        feeds[name] = np.ascontiguousarray(array)
    sizes = {a.shape[0] for a in feeds.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise bad_request(f"the inputs' first dimension is the batch: one size of at least 1 for all, got "
                          f"{sorted(sizes)}")
    return feeds


def _kind(datatype: str) -> str:
    return "float" if datatype.startswith("FP") else "int" if "INT" in datatype else datatype


def _outputs(requested: Any, served: ServedModel, binary: bool) -> list[Output]:
    output = served.info.output
    if requested is None:
        return [Output(output, binary=binary)]
    if not isinstance(requested, list):
        raise bad_request('"outputs" must be a list of {"name": ...}')
    chosen = []
    for entry in requested:
        if not isinstance(entry, dict) or entry.get("name") != output:
            raise bad_request(f"model {served.name!r} has one output, {output!r}; asked for "
                              f"{entry.get('name') if isinstance(entry, dict) else entry!r}")
        parameters = entry.get("parameters") or {}
        k = parameters.get("classification", 0)
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise bad_request(f"output {output!r}: classification must be a whole number (the top K), not {k!r}")
        if k and served.info.kind != "classifier":
            raise bad_request(f"model {served.name!r} is an embedding model: no classes to rank (drop "
                              f"classification)")
        chosen.append(Output(output, k, bool(parameters.get("binary_data", binary))))
    return chosen


def results(request: InferRequest, served: ServedModel) -> Callable[[Any], list[tuple[Output, Any]]]:
    """What turns the request's rows into its output tensors (in the worker thread): the rows, or
    the top-K ``score:index:label`` strings for a classification output."""
    import numpy as np

    labels = served.info.labels

    def finish(rows: Any) -> list[tuple[Output, Any]]:
        out = []
        for output in request.outputs:
            if output.classification:
                k = min(output.classification, rows.shape[1])
                best = np.argsort(-rows, axis=1, kind="stable")[:, :k]
                out.append((output, np.array([[f"{rows[r, i]:f}:{i}:{labels[i]}".encode() for i in row]
                                              for r, row in enumerate(best)], dtype=object)))
            else:
                out.append((output, np.ascontiguousarray(rows, dtype=np.float32)))
        return out

    return finish


def encode_response(request: InferRequest, served: ServedModel,
                    outputs: list[tuple[Output, Any]]) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON, or JSON then binary tensors."""
    entries, chunks = [], []
    for output, array in outputs:
        datatype = "BYTES" if array.dtype == object else "FP32"
        entry: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": list(array.shape)}
        if output.binary:
            chunk = (b"".join(struct.pack("<I", len(v)) + v for v in array.ravel()) if datatype == "BYTES"
                     else array.astype("<f4").tobytes())
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = [v.decode() for v in array.ravel()] if datatype == "BYTES" else array.ravel().tolist()
        entries.append(entry)
    answer: dict[str, Any] = {"model_name": served.name, "model_version": served.version, "outputs": entries}
    if request.id is not None:
        answer["id"] = request.id
    header = json.dumps(answer).encode()
    if not chunks:
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {"content-type": "application/octet-stream",
                                       HEADER_LENGTH: str(len(header))}
