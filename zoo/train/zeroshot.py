"""The start of a WiSE-FT run (:mod:`zoo.train.wiseft`): the class names' zero-shot classifier
through the image-text model's text tower, written once to ``wiseft/zero_shot.json`` so a resumed
run starts from the same prototypes."""

from __future__ import annotations

import json
from typing import Any

from zoo.atomic import atomic_write_json

__all__ = ["zero_shot_start", "FOLDER"]

#: The run folder's WiSE-FT files (zero_shot.json, fold-N.json, choice.json).
FOLDER = "wiseft"


def zero_shot_start(setup: Any) -> dict[str, Any]:
    """The class names' zero-shot classifier for this run (``wiseft/zero_shot.json``; a resumed run
    reads it): the names, or ``--labels``' descriptions, in the image prompts through the text tower."""
    import numpy as np

    from zoo.prompts import class_prompts
    from zoo.tasks.prior import label_texts

    path = setup.folder / FOLDER / "zero_shot.json"
    if setup.resuming and path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        saved["prototypes"] = np.asarray(saved["prototypes"], dtype=np.float32)
        return saved
    names = setup.targets["train"].names
    options = setup.options
    texts = label_texts(options.plan.labels, names, setup.card, options.data.data) or list(names)
    prompts = class_prompts(setup.card, texts, engine=options.engine.engine)
    start = {"texts": list(texts), "templates": list(prompts.templates), "scale": prompts.scale, "bias": prompts.bias,
             "scoring": prompts.scoring, "prototypes": prompts.prototypes}
    path.parent.mkdir(exist_ok=True)
    atomic_write_json(path, {**start, "prototypes": prompts.prototypes.tolist()})
    return start
