"""Pictures of a dense model's answers, for ``zoo predict --out DIR``: each input with its boxes
drawn (a detector). PIL only: the torch-free runtime's companion."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["annotated", "save_annotated", "PALETTE"]

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


def save_annotated(items: Sequence[Any], predictions: Sequence[Any], labels: Sequence[str], folder: str | Path
                   ) -> list[Path]:
    """Each input drawn with its answer into ``folder`` as ``NAME.png`` (numbered when names repeat)."""
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
        annotated(item, prediction, labels).save(out, format="PNG")
        written.append(atomic_write_bytes(path, out.getvalue(), fix="choose another --out"))
    return written
