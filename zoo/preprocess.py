"""Image preprocessing from a card's input spec, in numpy and PIL only.

The same code serves PyTorch (the backbone wraps the arrays in tensors) and the torch-free ONNX
runtime, so an exported model sees exactly the pixels the trained one saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from zoo.card import InputSpec
from zoo.errors import InputError as ImageError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

__all__ = ["open_image", "image_array", "image_batch", "ImageLike"]

ImageLike = Union[str, Path, "Image.Image", "np.ndarray"]

_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3}  # PIL.Image.Resampling values


def open_image(item: ImageLike) -> Image.Image:
    """An RGB PIL image from a path, a PIL image or an HxWx3 uint8 array."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (str, Path)):
        try:
            with Image.open(item) as image:
                image.load()
                return image.convert("RGB")
        except FileNotFoundError:
            raise ImageError(f"{item}: no such image file") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{item}: not a readable image ({exc}); check the file or remove it") from None
    import numpy as np

    if isinstance(item, np.ndarray):
        if item.ndim == 2:
            item = np.stack([item] * 3, axis=-1)
        return Image.fromarray(np.asarray(item, dtype=np.uint8)).convert("RGB")
    raise ImageError(f"cannot use a {type(item).__name__} as an image: give a path, a PIL image or an array")


def image_array(item: ImageLike, spec: InputSpec) -> np.ndarray:
    """Resize the shorter side, center-crop to ``spec.size``, scale to [0, 1], normalize: CHW float32."""
    import numpy as np

    image = open_image(item)
    height, width = spec.size or (224, 224)
    shorter = spec.resize or min(height, width)
    w, h = image.size
    scale = shorter / min(w, h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    image = image.resize((new_w, new_h), _RESAMPLE[spec.interpolation or "bilinear"])
    left, top = (new_w - width) // 2, (new_h - height) // 2
    image = image.crop((left, top, left + width, top + height))
    array = np.asarray(image, dtype=np.float32) / 255.0
    mean = np.asarray(spec.mean or (0.0, 0.0, 0.0), dtype=np.float32)
    std = np.asarray(spec.std or (1.0, 1.0, 1.0), dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1).copy()


def image_batch(items: Iterable[ImageLike] | Sequence[Any], spec: InputSpec) -> np.ndarray:
    """A float32 NCHW batch."""
    import numpy as np

    arrays = [image_array(item, spec) for item in items]
    if not arrays:
        raise ImageError("no images given")
    return np.stack(arrays)
