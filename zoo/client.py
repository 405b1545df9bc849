"""A Python client for ``zoo serve`` (and its TF Serving and KServe v2 endpoints): ``zoo.Client``.

```python
client = zoo.Client("http://127.0.0.1:8000")
client.models()                                  # what GET /v2/models lists
client.predict(["photo.jpg", Path("b.png")], model="digits")   # as `zoo predict --json` per input
client.predict(["a text to classify"], model="topics", top_k=3)
client.infer({"pixel_values": batch}, model="digits")  # KServe v2 tensors in, {output name: array} out
```

Inputs: a ``Path``, ``bytes``, a PIL image or an HxWx3 uint8 array is a file (an image or a clip);
a ``str`` is a text, or, for a model that does not read text, the path of a file. Each call is
one request (the server batches requests from many clients); an error answer raises
:class:`ClientError` with the server's one line and the status.

:class:`AsyncClient` has the same methods, awaited (the benchmark's load generator uses it).
Both build requests and read answers with the same functions; only the I/O differs.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["Client", "AsyncClient", "ClientError"]


class ClientError(ZooError):
    """The server answered an error (``status`` is the HTTP status; 0 when it could not be reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _httpx() -> Any:
    try:
        import httpx
    except ModuleNotFoundError:
        raise ZooError("zoo.Client needs httpx: pip install 'zoo[serve]'") from None
    return httpx


# --------------------------------------------------------------------------- requests and answers

def _file_bytes(item: Any) -> tuple[str, bytes] | None:
    """(name, bytes) for an input that is a file, or None for a text."""
    if isinstance(item, Path):
        try:
            return item.name, item.read_bytes()
        except OSError as exc:
            raise ClientError(f"{item}: cannot read it ({exc.strerror or exc})") from None
    if isinstance(item, (bytes, bytearray, memoryview)):
        return "bytes", bytes(item)
    if hasattr(item, "save") and hasattr(item, "size"):  # a PIL image
        buffer = io.BytesIO()
        item.save(buffer, format="PNG")
        return "image.png", buffer.getvalue()
    if hasattr(item, "__array_interface__"):
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(item).save(buffer, format="PNG")
        return "array.png", buffer.getvalue()
    return None


def predict_body(inputs: Sequence[Any], modality: str, top_k: int | None) -> dict[str, Any]:
    """TF Serving's JSON for ``inputs``: texts as strings, files as ``{"b64", "name"}``."""
    if isinstance(inputs, (str, bytes, Path)):
        inputs = [inputs]
    instances: list[Any] = []
    for item in inputs:
        if isinstance(item, str) and modality != "text" and Path(item).is_file():
            item = Path(item)
        found = _file_bytes(item)
        if found is None:
            if not isinstance(item, str):
                raise ClientError(f"cannot send a {type(item).__name__}: give texts, paths, bytes, PIL images or "
                                  f"uint8 arrays")
            instances.append(item)
        else:
            name, data = found
            instances.append({"b64": base64.b64encode(data).decode("ascii"), "name": name})
    body: dict[str, Any] = {"instances": instances}
    if top_k is not None:
        body["top_k"] = int(top_k)
    return body


def infer_body(tensors: Mapping[str, Any], modality: str, output: str | None, classification: int,
               binary: bool) -> tuple[bytes, dict[str, str]]:
    """A KServe v2 request: tensors as JSON data or, with ``binary``, in Triton's binary extension.
    A tensor of str or bytes is BYTES: texts, or files (base64 in JSON for a model that is not text)."""
    import numpy as np

    types = {"float32": "FP32", "float64": "FP64", "float16": "FP16", "int64": "INT64", "int32": "INT32",
             "int16": "INT16", "int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}
    inputs, chunks = [], []
    for name, value in tensors.items():
        array = np.asarray(value)
        if array.dtype.kind in "USO":
            elements = [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel()]
            entry: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": list(array.shape)}
            chunk = b"".join(struct.pack("<I", len(e)) + e for e in elements)
            data: list[Any] = [e.decode() if modality == "text" else base64.b64encode(e).decode() for e in elements]
        elif str(array.dtype) in types:
            entry = {"name": name, "datatype": types[str(array.dtype)], "shape": list(array.shape)}
            chunk = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            data = array.ravel().tolist()
        else:
            raise ClientError(f"tensor {name!r}: dtype {array.dtype} has no v2 datatype")
        if binary:
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = data
        inputs.append(entry)
    request: dict[str, Any] = {"inputs": inputs, "parameters": {"binary_data_output": binary}}
    if output is not None:
        parameters: dict[str, Any] = {"binary_data": binary}
        if classification:
            parameters["classification"] = classification
        request["outputs"] = [{"name": output, "parameters": parameters}]
    header = json.dumps(request).encode()
    if not binary:
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {"content-type": "application/octet-stream",
                                       "inference-header-content-length": str(len(header))}


def read_infer(content: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """A v2 answer's outputs as ``{name: array}`` (BYTES as an array of str)."""
    import numpy as np

    length = headers.get("inference-header-content-length")
    header, binary = (content[:int(length)], content[int(length):]) if length else (content, b"")
    answer = json.loads(header)
    out, offset = {}, 0
    for output in answer.get("outputs", []):
        shape = output["shape"]
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            chunk, offset = binary[offset:offset + size], offset + size
            if output["datatype"] == "BYTES":
                values, at = [], 0
                while at < len(chunk):
                    (n,) = struct.unpack_from("<I", chunk, at)
                    values.append(chunk[at + 4:at + 4 + n].decode())
                    at += 4 + n
                out[output["name"]] = np.array(values, dtype=object).reshape(shape)
            else:
                out[output["name"]] = np.frombuffer(chunk, dtype="<f4").reshape(shape)
        elif output["datatype"] == "BYTES":
            out[output["name"]] = np.array(output["data"], dtype=object).reshape(shape)
        else:
            out[output["name"]] = np.asarray(output["data"], dtype=np.float32).reshape(shape)
    return out


def _checked(response: Any) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text
        raise ClientError(f"{response.request.method} {response.request.url}: {response.status_code} {message}",
                          response.status_code)
    return response


def _unreachable(url: str, exc: Exception) -> ClientError:
    return ClientError(f"cannot reach zoo serve at {url} ({type(exc).__name__}: {exc}); is it running there?")


def _predict_path(model: str, version: str | None) -> str:
    return f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"


def _infer_path(model: str, version: str | None) -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"


def _output(record: dict[str, Any], output: str | None, classification: int) -> str | None:
    """The output to name in the request: the one asked for, or the model's own for classification."""
    return output or (record.get("output") if classification else None)


def _only_model(models: list[dict[str, Any]], url: str) -> str:
    names = sorted({m["name"] for m in models})
    if len(names) != 1:
        raise ClientError(f"{url} serves {len(names)} models ({', '.join(names)}); say which: model=NAME")
    return names[0]


def _record(models: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The listing of model ``name`` (its highest version; the server answers 404 for an unknown one)."""
    found = [m for m in models if m["name"] == name]
    return found[-1] if found else {"name": name, "modality": "text", "output": None}


# --------------------------------------------------------------------------- the clients

class Client:
    """A synchronous client; ``model`` is the default model for :meth:`predict` and :meth:`infer`."""

    def __init__(self, url: str, *, model: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self._http = _httpx().Client(base_url=self.url, timeout=timeout)
        self._models: list[dict[str, Any]] | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return _checked(self._http.request(method, path, **kwargs))
        except _httpx().TransportError as exc:
            raise _unreachable(self.url, exc) from None

    def models(self) -> list[dict[str, Any]]:
        """Every served model: name, version, kind, modality, sha256, labels..."""
        self._models = self._send("GET", "/v2/models").json()["models"]
        return self._models

    def ready(self) -> bool:
        try:
            return self._http.get("/v2/health/ready").status_code == 200
        except _httpx().TransportError:
            return False

    def _which(self, model: str | None) -> dict[str, Any]:
        models = self._models if self._models is not None else self.models()
        return _record(models, model or self.model or _only_model(models, self.url))

    def predict(self, inputs: Sequence[Any] | Any, *, model: str | None = None, version: str | None = None,
                top_k: int | None = None) -> list[dict[str, Any]]:
        """One prediction per input, each as ``zoo predict --json`` prints it."""
        found = self._which(model)
        body = predict_body(inputs, found["modality"], top_k)
        return self._send("POST", _predict_path(found["name"], version), json=body).json()["predictions"]

    def infer(self, tensors: Mapping[str, Any], *, model: str | None = None, version: str | None = None,
              output: str | None = None, classification: int = 0, binary: bool = True) -> dict[str, Any]:
        """KServe v2 inference: ``{input name: array}`` in, ``{output name: array}`` out."""
        found = self._which(model)
        content, headers = infer_body(tensors, found["modality"], _output(found, output, classification),
                                      classification, binary)
        response = self._send("POST", _infer_path(found["name"], version), content=content, headers=headers)
        return read_infer(response.content, response.headers)


class AsyncClient:
    """:class:`Client`'s methods, awaited (``async with zoo.AsyncClient(url) as client``)."""

    def __init__(self, url: str, *, model: str | None = None, timeout: float = 60.0,
                 limits: Any = None) -> None:
        httpx = _httpx()
        self.url = url.rstrip("/")
        self.model = model
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout,
                                       limits=limits or httpx.Limits(max_connections=None))
        self._models: list[dict[str, Any]] | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return _checked(await self._http.request(method, path, **kwargs))
        except _httpx().TransportError as exc:
            raise _unreachable(self.url, exc) from None

    async def models(self) -> list[dict[str, Any]]:
        self._models = (await self._send("GET", "/v2/models")).json()["models"]
        return self._models

    async def _which(self, model: str | None) -> dict[str, Any]:
        models = self._models if self._models is not None else await self.models()
        return _record(models, model or self.model or _only_model(models, self.url))

    async def predict(self, inputs: Sequence[Any] | Any, *, model: str | None = None, version: str | None = None,
                      top_k: int | None = None) -> list[dict[str, Any]]:
        found = await self._which(model)
        body = predict_body(inputs, found["modality"], top_k)
        return (await self._send("POST", _predict_path(found["name"], version), json=body)).json()["predictions"]

    async def infer(self, tensors: Mapping[str, Any], *, model: str | None = None, version: str | None = None,
                    output: str | None = None, classification: int = 0, binary: bool = True) -> dict[str, Any]:
        found = await self._which(model)
        content, headers = infer_body(tensors, found["modality"], _output(found, output, classification),
                                      classification, binary)
        response = await self._send("POST", _infer_path(found["name"], version), content=content, headers=headers)
        return read_infer(response.content, response.headers)
