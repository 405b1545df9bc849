"""Where an image model looked: Grad-CAM heatmaps from pytorch-grad-cam (``grad-cam`` on PyPI).

The model is the run's own, rebuilt from its folder (``zoo.open_run(dir).load_model()``: the
backbone cut where the run chose, the stages it trained, its head), so the heatmap explains the
predictions the page lists. The target layer is the deepest stage of the card (input -> output)
that still feeds the run's embedding and gives a spatial map (N, C, H, W with H, W > 1): layers
after the cut get no gradient, and a pooled vector has no "where".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["Heatmap", "heatmaps", "target_layer", "MISSING"]

#: What the page says when the library is not installed.
MISSING = "heatmaps need pytorch-grad-cam: pip install 'zoo[report]' (./install.sh installs it)"


class Heatmap:
    """One example's image with the heatmap of its predicted class laid over it (a data: URI)."""

    def __init__(self, line: dict[str, Any], image: str, layer: str) -> None:
        self.line, self.image, self.layer = line, image, layer


def target_layer(model: Any, sample: Any) -> tuple[str, Any]:
    """(name, module): the layer Grad-CAM reads (see the module's docstring)."""
    import torch

    backbone = model.backbone
    card = backbone.card
    stages = list(card.stages)
    cut = list(backbone.cut or (card.embedding.node,))
    # the embedding node comes after every stage; a feature named in the cut is one of them
    deepest = max(stages.index(name) if name in stages else len(stages) - 1 for name in cut)
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name in stages[: deepest + 1]:
        try:
            module = backbone.body.get_submodule(name)
        except AttributeError:
            continue
        hooks.append(module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape)) if torch.is_tensor(out) else None))
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    spatial = [name for name in stages[: deepest + 1] if len(shapes.get(name, ())) == 4 and min(shapes[name][2:]) > 1]
    if not spatial:
        raise ZooError(f"model {card.name!r}: no stage before the cut gives a spatial map, so there is nothing to "
                       f"draw a heatmap on")
    return spatial[-1], backbone.body.get_submodule(spatial[-1])


def _target(line: dict[str, Any], classes: Sequence[str]) -> int:
    """The class whose evidence is drawn: the predicted one (a multi-label line's most probable)."""
    if isinstance(line["predicted"], str):
        return classes.index(line["predicted"])
    probabilities = line.get("probabilities") or [0.0]
    return max(range(len(probabilities)), key=probabilities.__getitem__)


def heatmaps(run_dir: str | Path, lines: Sequence[dict[str, Any]], classes: Sequence[str]) -> list[Heatmap]:
    """A Grad-CAM heatmap of the predicted class for each line (an image example), from the run's
    model; lines whose image is gone are left out. ImportError when pytorch-grad-cam is missing."""
    import numpy as np
    from PIL import Image
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from zoo.report.charts import png_uri
    from zoo.report.gallery import item_source

    folder = Path(run_dir)
    found = [(line, item_source(folder, line)) for line in lines]
    found = [(line, source) for line, source in found if isinstance(source, Path)]
    if not found:
        return []
    from zoo.runs.record import open_run

    model = open_run(folder).load_model().eval()
    backbone = model.backbone
    spec = backbone.card.input
    inputs = backbone.preprocess([str(source) for _, source in found])
    name, layer = target_layer(model, inputs[:1])
    mean = np.asarray(spec.mean or (0.0, 0.0, 0.0), dtype=np.float32)
    std = np.asarray(spec.std or (1.0, 1.0, 1.0), dtype=np.float32)
    shown = []
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(_target(line, classes)) for line, _ in found])
    for (line, _), heat, tensor in zip(found, maps, inputs):
        rgb = np.clip(tensor.permute(1, 2, 0).numpy() * std + mean, 0, 1).astype(np.float32)
        overlay = show_cam_on_image(rgb, heat, use_rgb=True)
        shown.append(Heatmap(line, png_uri(Image.fromarray(overlay).resize((192, 192 * rgb.shape[0] // rgb.shape[1]))),
                             name))
    return shown
