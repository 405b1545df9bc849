"""Inputs made from a card when there is no data: for validating an ONNX graph against PyTorch.

Both ``zoo export`` of a bare backbone and the frozen-forward engine built by ``zoo.load(...,
engine=...)`` need a few inputs of the model's kind before any user data is at hand.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SENTENCES", "generated_items"]

#: A few sentences of varied length and topic: the text inputs of a bare text backbone.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Interest rates rose again this quarter, and markets fell sharply.",
    "Bake the bread for forty minutes until golden.",
    "Hello!",
    "The striker scored twice in the final minutes of the championship match, to the delight of the fans.",
    "A small model zoo for transfer learning exports its models to ONNX.",
    "Rain is expected tomorrow in the north; the south stays dry and warm.",
    "Which planet is closest to the sun?",
    "She read the letter twice, folded it carefully and put it back in the drawer without a word.",
    "Tokyo",
    "Add two cups of flour, one egg and a pinch of salt.",
    "The committee will publish its report on energy prices next week.",
)


def generated_items(card: Any, count: int, seed: int = 0) -> list[Any]:
    """Inputs made from the card's spec when there is no data: smooth random pictures, sentences, or
    what the card's front end makes (sounds for the audio one)."""
    import numpy as np

    if card.input.front_end is not None:
        from zoo.frontend import generated

        return generated(card.input, count, seed)
    if card.modality == "text":
        return [SENTENCES[i % len(SENTENCES)] for i in range(count)]
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = card.input.size or (224, 224)
    items = []
    for _ in range(count):
        # low-resolution colour noise up-sampled: blobs and edges, with natural-image-like statistics
        small = rng.integers(0, 256, size=(rng.integers(4, 17), rng.integers(4, 17), 3), dtype=np.uint8)
        picture = Image.fromarray(small).resize((width + width // 7, height + height // 7), Image.Resampling.BICUBIC)
        items.append(np.asarray(picture))
    return items
