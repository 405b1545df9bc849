"""A request's inputs, from what arrived (texts, bytes of files) to what the graph takes.

Two steps, on two sides of the event loop:

- :func:`check_items` (on the loop, microseconds): each item is of a kind the model reads (a text
  for a text model; the bytes of an image, or of a clip for a model with a front end), else a 400
  naming the item and what the model takes;
- :func:`encode` (in the batch's worker thread): bytes decoded (PIL for images, with the pixel
  limit checked from the header before any decoding; the model's front end for clips) and
  preprocessed by the runtime's :class:`zoo.runtime.Preprocessor`, the same code ``zoo predict`` runs.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import InputError
from zoo.serve.errors import RequestError, bad_request, too_large

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from zoo.modelinfo import ModelInfo
    from zoo.runtime import OnnxModel

__all__ = ["Item", "check_items", "encode", "what_it_takes"]


@dataclass(frozen=True)
class Item:
    """One input as it arrived: a text, or a file's bytes. ``name`` is what its prediction calls it
    (the upload's file name, the text itself, or ``instances[i]``), as ``zoo predict`` names inputs."""

    name: str
    text: str | None = None
    data: bytes | None = None


def what_it_takes(info: ModelInfo) -> str:
    """A model's inputs in words, for error messages and the page."""
    if info.modality == "text":
        return 'texts (a JSON string, or text/plain)'
    kind = "images" if info.modality == "image" else f"{info.modality} clips"
    return f'{kind} (a JSON {{"b64": "..."}}, a multipart file upload, or the file itself as the body)'


def check_items(items: Sequence[Item], info: ModelInfo, model: str) -> list[Item]:
    """Items of the kind ``model`` reads; texts for a text model from UTF-8 bytes (an uploaded .txt)."""
    if not items:
        raise bad_request(f"no inputs for model {model!r}: send {what_it_takes(info)}", reason="empty")
    checked = []
    for index, item in enumerate(items):
        where = f"input {index} ({item.name})" if not item.name.startswith("instances[") else item.name
        if info.modality == "text":
            text = item.text
            if text is None:
                try:
                    text = (item.data or b"").decode("utf-8")
                except UnicodeDecodeError:
                    raise bad_request(f"{where}: not UTF-8 text, and model {model!r} takes {what_it_takes(info)}; "
                                      f"send the text itself") from None
                item = Item(item.name, text=text)
            if not text.strip():
                raise bad_request(f"{where}: an empty text; model {model!r} needs words to read", reason="empty")
        elif item.text is not None:
            raise bad_request(f"{where} is a text, and model {model!r} takes {what_it_takes(info)}; send the file's "
                              f"bytes, not a string")
        elif not item.data:
            raise bad_request(f"{where}: an empty file (0 bytes); model {model!r} takes {what_it_takes(info)}",
                              reason="empty")
        checked.append(item)
    return checked


def encode(model: OnnxModel, items: Sequence[Item], *, max_pixels: int) -> dict[str, np.ndarray]:
    """The graph's feeds for ``items`` (already checked); a bad one is a RequestError naming it."""
    info = model.info
    if info.modality == "text":
        return model.encode([item.text for item in items])
    if info.preprocessing.get("front_end"):
        return _clips(model, items)
    return model.encode([_image(item, max_pixels) for item in items])


def _image(item: Item, max_pixels: int) -> Any:
    """An RGB PIL image from bytes; the size is read from the header and refused before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides
            image = Image.open(io.BytesIO(item.data or b""))
            width, height = image.size
            if width * height > max_pixels:
                raise _bomb(item, f"{width}x{height} pixels", max_pixels)
            image.load()
            return image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise _bomb(item, str(exc).split(" pixels")[0].split("(")[-1] + " pixels", max_pixels) from None
    except RequestError:
        raise
    except UnidentifiedImageError:
        raise bad_request(f"{item.name}: not an image (no image format PIL reads starts like these "
                          f"{len(item.data or b''):,} bytes); send a PNG, JPEG, WebP, BMP, GIF or TIFF file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise bad_request(f"{item.name}: not a readable image ({detail}); send a PNG, JPEG, WebP, BMP, GIF or "
                          f"TIFF file") from None


def _bomb(item: Item, size: str, max_pixels: int) -> RequestError:
    return too_large(f"{item.name}: the image claims {size}, more than this server's limit of {max_pixels:,} "
                     f"(--max-pixels); a decompression bomb or a very large image: send it smaller", reason="pixels")


def _clips(model: OnnxModel, items: Sequence[Item]) -> dict[str, np.ndarray]:
    """Clips through the model's front end, which reads files: each item's bytes in a temp file
    (its own suffix when the front end reads it; the decoder goes by the bytes, not the name)."""
    from zoo.frontend import suffixes

    known = suffixes(model.info.modality)
    paths: list[Path] = []
    try:
        for item in items:
            suffix = Path(item.name).suffix.lower()
            handle, name = tempfile.mkstemp(prefix="zoo-serve-", suffix=suffix if suffix in known else known[0])
            with os.fdopen(handle, "wb") as file:
                file.write(item.data or b"")
            paths.append(Path(name))
        try:
            return model.encode([str(p) for p in paths])
        except InputError as exc:
            message = str(exc)
            for path, item in zip(paths, items):
                message = message.replace(str(path), item.name)
            raise bad_request(message) from None
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
