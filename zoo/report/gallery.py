"""What the gallery shows of one held-out example: its image, its text, or its clip's spectrogram.

An image is read from the path its prediction line names (or the PNG saved under
``report/items/``); a clip is drawn as the picture the backbone saw, through the run's own front
end (its recorded parameters: the same log-mel image as in training), not as a generic plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["Thumb", "thumbnail", "item_source", "THUMB"]

#: The longest side of a gallery image, in pixels.
THUMB = 160


class Thumb:
    """One example as the page shows it: ``image`` (a data: URI) or ``text``, or why neither."""

    def __init__(self, image: str | None = None, text: str | None = None, missing: str | None = None) -> None:
        self.image, self.text, self.missing = image, text, missing


def item_source(run_dir: Path, line: dict[str, Any]) -> Path | str | None:
    """The file (or text) a prediction line points to; None when it is not there any more."""
    item = line["item"]
    if "text" in item:
        return str(item["text"])
    relative = item.get("image")
    path = Path(item["path"]) if "path" in item else (run_dir / relative if relative else None)
    return path if path is not None and path.is_file() else None


def _spectrogram(path: Path, card: Any) -> Any:
    """The clip through the run's front end, de-normalised, in a perceptual colour map."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image

    from zoo.frontend import array

    spec = card.input
    plane = array(str(path), spec)[0] * (spec.std or (1.0,))[0] + (spec.mean or (0.0,))[0]
    low, high = float(plane.min()), float(plane.max())
    scaled = (plane - low) / (high - low) if high > low else np.zeros_like(plane)
    return Image.fromarray((colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8))


def thumbnail(run_dir: Path, line: dict[str, Any], card: Any = None) -> Thumb:
    """The example of ``line``: ``card`` (the run's, with its front end) is needed for clips only."""
    from PIL import Image

    from zoo.report.charts import png_uri

    source = item_source(run_dir, line)
    if source is None:
        return Thumb(missing=f"{line.get('where')}: the file is not there any more")
    if isinstance(source, str):
        return Thumb(text=source + (" [...]" if line["item"].get("cut") else ""))
    if card is not None and card.input.front_end is not None:
        image = _spectrogram(source, card)
    else:
        with Image.open(source) as opened:
            image = opened.convert("RGBA")
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        paper.alpha_composite(image)
        image = paper.convert("RGB")
    image.thumbnail((THUMB, THUMB))
    return Thumb(image=png_uri(image))
