"""TF Serving's REST convention: ``POST /v1/models/NAME:predict`` with ``{"instances": [...]}``
(or the columnar ``{"inputs": [...]}``), answered ``{"predictions": [...]}`` (``{"outputs": ...}``).

An instance is a text (a JSON string), or a file's bytes as ``{"b64": "..."}`` (TF Serving's
binary convention; zoo also reads an optional ``"name"`` beside it, which the prediction repeats);
``{"input_name": <either>}`` is taken as the one input it names. ``"top_k"`` beside the instances (or
``?top_k=`` in the URL) sets how many labels each classifier prediction lists (default 5).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoo.runtime import embedding_dict
from zoo.serve.errors import bad_request
from zoo.serve.inputs import Item
from zoo.serve.protocols import uploads

if TYPE_CHECKING:  # pragma: no cover
    from zoo.serve.models import ServedModel

__all__ = ["parse_request", "parse_json", "parse_top_k", "answers", "response"]


async def parse_request(headers: Mapping[str, str], query: Mapping[str, str],
                        body: bytes) -> tuple[list[Item], str, Any]:
    """The items of a predict request by its content type (JSON here; forms and files in
    :mod:`~zoo.serve.protocols.uploads`), the key to answer under, and the ``top_k`` asked for
    (the body's, else the URL's)."""
    kind = uploads.media_type(headers.get("content-type"))
    key, top_k = "instances", None
    if kind == "application/json" or kind.endswith("+json"):
        items, key, top_k = parse_json(body)
    elif kind == "multipart/form-data":
        items, top_k = await uploads.parse_multipart(headers, body)
    elif kind == "application/x-www-form-urlencoded":
        items, top_k = uploads.parse_urlencoded(body)
    else:
        items = uploads.parse_raw(headers.get("content-type", ""), body, query.get("name"))
    return items, key, top_k if top_k is not None else query.get("top_k")


def parse_json(body: bytes) -> tuple[list[Item], str, Any]:
    """The items of a JSON body, the key they came under (``instances`` or ``inputs``), and its
    ``top_k`` (or None)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"the body is not valid JSON ({exc}); send {{\"instances\": [...]}}") from None
    if not isinstance(data, dict) or not ({"instances", "inputs"} & set(data)):
        raise bad_request('the JSON body needs "instances": a list of texts or {"b64": "..."} files '
                          '(TF Serving\'s convention)')
    key = "instances" if "instances" in data else "inputs"
    instances = data[key]
    if key == "inputs" and isinstance(instances, dict):
        if len(instances) != 1:
            raise bad_request(f'"inputs" names {len(instances)} inputs ({", ".join(map(str, instances))}); '
                              f"zoo models take one")
        instances = next(iter(instances.values()))
    if not isinstance(instances, list):
        raise bad_request(f'"{key}" must be a list (one entry per input), not a {type(instances).__name__}')
    return [_item(instance, f"{key}[{i}]") for i, instance in enumerate(instances)], key, data.get("top_k")


def _item(instance: Any, where: str, nested: bool = False) -> Item:
    if isinstance(instance, str):
        return Item(instance, text=instance)
    if isinstance(instance, dict) and "b64" in instance:
        encoded = instance["b64"]
        name = instance.get("name", where)
        if not isinstance(encoded, str) or not isinstance(name, str):
            raise bad_request(f'{where}: "b64" holds the file as a base64 string (and "name", if given, a string)')
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f'{where}: "b64" is not valid base64') from None
        return Item(name, data=data)
    if isinstance(instance, dict) and len(instance) == 1 and not nested:
        return _item(next(iter(instance.values())), where, nested=True)
    raise bad_request(f'{where} is {_kind(instance)}; send a text, or a file as {{"b64": "..."}} (tensors go to '
                      f"POST /v2/models/NAME/infer)")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return f"an object with keys {sorted(value)}"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a list" if isinstance(value, list) else "null" if value is None else f"a {type(value).__name__}"


def parse_top_k(value: Any, default: int) -> int:
    """``top_k`` from the body or the URL: a whole number of at least 1."""
    if value is None:
        return default
    whole = isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.isdigit()
    if not whole or int(value) < 1:
        raise bad_request(f"top_k must be a whole number of at least 1, not {value!r}")
    return int(value)


def answers(served: ServedModel, items: Sequence[Item], top_k: int) -> Callable[[Any], list[dict[str, Any]]]:
    """What turns a request's output rows into its predictions, each as ``zoo predict --json``
    prints it: labels and probabilities (and ``labels`` over their thresholds for a multi-label
    model), a regression's numbers by target, a detector's boxes in each picture's pixels (its
    size read from the file's header), a segmenter's class shares of the picture's pixels, or the
    embedding; an instance segmenter's boxes with their pixels."""
    from zoo.runtime import DENSE

    model = served.model
    names = [item.name for item in items]
    if model.info.kind in DENSE:
        sizes = [_picture_size(item) for item in items]
        return lambda rows: [p.to_dict() for p in model.read(rows, names, top_k, sizes=sizes)]
    if model.info.kind in ("classifier", "regression"):
        return lambda rows: [p.to_dict() for p in model.read(rows, names, top_k)]
    return lambda rows: [embedding_dict(name, row) for name, row in zip(names, rows)]


def _picture_size(item: Item) -> tuple[int, int]:
    """(width, height) of an uploaded picture, from its header (it decodes later, in its batch)."""
    import io

    from zoo.postprocess import picture_size

    try:
        return picture_size(io.BytesIO(item.data or b""))
    except Exception:  # not a picture: its decoding, in the batch, answers the 400 naming it
        return (0, 0)


def response(predictions: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """TF Serving's answer: ``predictions`` for a row request, ``outputs`` for a columnar one."""
    return {"predictions" if key == "instances" else "outputs": predictions}
