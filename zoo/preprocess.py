"""Image preprocessing from a card's input spec, in numpy and PIL only.

The same code serves PyTorch (the backbone wraps the arrays in tensors) and the torch-free ONNX
runtime, so an exported model sees exactly the pixels the trained one saw.
"""

from __future__ import annotations

import functools
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


#: Bumped whenever the pixels :func:`image_array` makes change for the same input spec; feature
#: cache keys and embedder identities include it, so nothing computed before is reused. 2: the
#: resize and the crop follow torchvision (``Resize(int)``, ``CenterCrop``) to the pixel.
VERSION = 2


def image_array(item: ImageLike, spec: InputSpec) -> np.ndarray:
    """Resize the shorter side (``crop_mode="squash"``: both sides), center-crop to ``spec.size``,
    scale to [0, 1], normalize: CHW float32.

    The same pixels as torchvision's ``Resize(resize)`` + ``CenterCrop(size)`` on a PIL image (and
    so timm's eval transform and torchvision's ``weights.transforms()``, which are built from them):
    the longer side is truncated, not rounded (``int(resize * long / short)``), and the crop offset
    is ``round((new - crop) / 2)``. A pixel of difference in either shifts every pixel of the crop.
    """
    import numpy as np

    image = open_image(item)
    height, width = spec.size or (224, 224)
    shorter = spec.resize or min(height, width)
    w, h = image.size
    if spec.crop_mode == "squash":  # timm's and Hugging Face's: both sides scaled, the aspect ratio lost
        new_w, new_h = int(shorter * width / min(height, width)), int(shorter * height / min(height, width))
    elif w <= h:
        new_w, new_h = shorter, int(shorter * h / w)
    else:
        new_w, new_h = int(shorter * w / h), shorter
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), _RESAMPLE[spec.interpolation or "bilinear"])
    if new_w < width or new_h < height:  # smaller than the crop: pad with black, as CenterCrop does
        from PIL import Image

        padded = Image.new(image.mode, (max(new_w, width), max(new_h, height)))
        padded.paste(image, ((max(new_w, width) - new_w) // 2, (max(new_h, height) - new_h) // 2))
        image, (new_w, new_h) = padded, padded.size
    left, top = int(round((new_w - width) / 2.0)), int(round((new_h - height) / 2.0))
    image = image.crop((left, top, left + width, top + height))
    return _normalize(np.asarray(image), spec.mean or (0.0, 0.0, 0.0), spec.std or (1.0, 1.0, 1.0))


def _normalize(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32 ``(pixel / 255 - mean) / std``, through a 256-entry table per
    channel: the same float32 arithmetic as computing it per pixel (the same numbers), in a
    quarter of the time, which matters when decoding feeds an onnxruntime pass."""
    import numpy as np

    table = _tables(tuple(float(m) for m in mean), tuple(float(s) for s in std))
    out = np.empty((3, *pixels.shape[:2]), dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], pixels[..., channel], out=out[channel])
    return out


@functools.lru_cache(maxsize=16)
def _tables(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    import numpy as np

    values = np.arange(256, dtype=np.float32)[None, :].repeat(3, axis=0) / 255.0
    return ((values - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]).astype(np.float32)


def image_batch(items: Iterable[ImageLike] | Sequence[Any], spec: InputSpec) -> np.ndarray:
    """A float32 NCHW batch."""
    import numpy as np

    arrays = [image_array(item, spec) for item in items]
    if not arrays:
        raise ImageError("no images given")
    return np.stack(arrays)
