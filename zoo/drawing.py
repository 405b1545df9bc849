"""Pictures of a dense model's answers, for ``zoo predict --out DIR``: each input with its boxes
drawn (a detector); each input's mask as a paletted PNG whose pixel values are the class indices
(a segmenter), or with ``--overlay`` the mask laid over the picture. PIL and numpy only: the
torch-free runtime's companion."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["annotated", "save_annotated", "mask_colours", "mask_image", "overlaid", "PALETTE"]

#: One colour per class index (cycled), chosen to stay apart on photographs.
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40))


def annotated(item: Any, prediction: Any, labels: Sequence[str]) -> Any:
    """``item`` (a path, PIL image or array) as an RGB PIL image with the prediction's boxes, each
    labelled with its class and score, in its class's colour."""
    from PIL import ImageDraw

    from zoo.preprocess import open_image

    image = open_image(item).copy()
    draw = ImageDraw.Draw(image)
    index = {name: i for i, name in enumerate(labels)}
    for box in prediction.boxes or ():
        colour = PALETTE[index.get(box.label, 0) % len(PALETTE)]
        draw.rectangle(box.box, outline=colour, width=max(1, round(min(image.size) / 150)))
        text = f"{box.label} {box.score:.2f}"
        left, top = box.box[0], max(0, box.box[1] - 11)
        draw.rectangle((left, top, left + 6 * len(text) + 4, top + 11), fill=colour)
        draw.text((left + 2, top), text, fill=(0, 0, 0))
    return image


#: A mask's colour for its first class (a segmenter's background, by the formats' convention) and
#: for ignored pixels (255).
BACKGROUND, IGNORED = (0, 0, 0), (255, 255, 255)


def _palette() -> list[int]:
    """256 RGB colours: index 0 :data:`BACKGROUND`, then :data:`PALETTE` cycled, 255 :data:`IGNORED`."""
    colours = [BACKGROUND] + [PALETTE[(i - 1) % len(PALETTE)] for i in range(1, 255)] + [IGNORED]
    return [channel for colour in colours for channel in colour]


def mask_colours(mask: Any) -> Any:
    """A class-index mask (HxW) as an RGB array in the palette :func:`mask_image` writes."""
    import numpy as np

    return np.asarray(_palette(), dtype=np.uint8).reshape(256, 3)[np.asarray(mask, dtype=np.uint8)]


def mask_image(mask: Any) -> Any:
    """A class-index mask as a paletted PIL image: its pixel values are the class indices (what a
    program reads back), its palette the classes' colours (what a viewer shows)."""
    import numpy as np
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(_palette())
    return image


def overlaid(item: Any, mask: Any, alpha: float = 0.5) -> Any:
    """``item`` as an RGB PIL image with its mask's classes laid over it (index 0 left clear)."""
    import numpy as np
    from PIL import Image

    from zoo.preprocess import open_image

    pixels = np.asarray(open_image(item), dtype=np.float32)
    mask = np.asarray(mask)
    shown = (mask > 0)[..., None]
    blended = np.where(shown, (1 - alpha) * pixels + alpha * mask_colours(mask), pixels)
    return Image.fromarray(blended.round().astype(np.uint8))


def _picture(item: Any, prediction: Any, labels: Sequence[str], overlay: bool) -> Any:
    """What ``zoo predict --out`` writes for one input: its mask (or overlay) or its boxes drawn."""
    if prediction.mask is not None and prediction.boxes is not None:  # an instance segmenter: object numbers
        return annotated(overlaid(item, prediction.mask), prediction, labels) if overlay else mask_image(prediction.mask)
    if prediction.mask is not None:
        return overlaid(item, prediction.mask) if overlay else mask_image(prediction.mask)
    return annotated(item, prediction, labels)


def save_annotated(items: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str], folder: str | Path,
                   *, overlay: bool = False) -> list[Path]:
    """Each input's answer into ``folder`` as ``NAME.png`` (numbered when names repeat): its boxes
    drawn, or its mask (laid over it with ``overlay``)."""
    from zoo.atomic import atomic_write_bytes, ensure_folder

    folder = ensure_folder(Path(folder), "choose another --out")
    written: list[Path] = []
    for number, (item, prediction) in enumerate(zip(items, predictions)):
        stem = Path(str(item)).stem if isinstance(item, (str, Path)) else f"input-{number:04d}"
        path = folder / f"{stem}.png"
        if path in written:
            path = folder / f"{stem}-{number:04d}.png"
        import io

        out = io.BytesIO()
        _picture(item, prediction, labels, overlay).save(out, format="PNG")
        written.append(atomic_write_bytes(path, out.getvalue(), fix="choose another --out"))
    return written
