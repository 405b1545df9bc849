"""Label names as prompts: parsing ``--labels``, checking ``--template``, and the prototype of a
label (its prompts embedded, normalised, averaged). Shared by zero-shot classifiers
(:func:`zoo.embed.zero_shot`: texts with a text encoder, images with an image-text model's text
tower), the label-aware head of ``zoo finetune`` (:mod:`zoo.tasks.prior`) and the zero-shot start
of an image-text model's fine-tuning (:mod:`zoo.train.wiseft`): :func:`class_prompts` is the one
way all three turn class names into a classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import InputError, LoadError

__all__ = ["TEMPLATES", "IMAGE_TEMPLATES", "default_templates", "parse_labels", "check_templates",
           "prompt_prototypes", "ClassPrompts", "class_prompts", "joint_scores"]

#: Prompts a label name is embedded in by default (their embeddings are averaged), kept generic
#: rather than fitted to one corpus. On all of BBC News (first 64 words, 2,109 texts, the folder
#: names as labels) the bare name gave 0.757, "a text about {}." 0.797, these three 0.800, and the
#: corpus-specific "a news article about {}." 0.817: a user who knows the domain should say so
#: with --template.
TEMPLATES = ("{}", "a text about {}.", "this text is about {}.")

#: Prompts for classifying images with an image-text model's text tower: prompt ensembling as
#: CLIP's paper does it (section 3.1.4: "A photo of a {label}." gave ImageNet 1.3 points over the
#: bare name, and averaging 80 such prompts' embeddings 3.5 more), in the style of the templates
#: the CLIP authors published for ImageNet; a few generic ones, not tuned to any dataset (no
#: pretrained weights are reachable here to tune them on). --template says better for a known domain.
IMAGE_TEMPLATES = ("a photo of a {}.", "a bad photo of a {}.", "a photo of the large {}.", "a photo of the small {}.",
                   "a cropped photo of a {}.", "a close-up photo of a {}.", "art of the {}.")


def default_templates(modality: str) -> tuple[str, ...]:
    """The prompts a label is put in when the user gives none: for the inputs' modality."""
    return IMAGE_TEMPLATES if modality == "image" else TEMPLATES


def parse_labels(labels: str | Path | Sequence[str] | dict[str, str]) -> dict[str, str]:
    """``{label: text to embed}`` from a comma-separated string, a file of one label per line
    (``label: description`` lines give a description to embed instead of the name), a list, or
    such a dict itself (names taken as they are). Empty or duplicate names are an error naming them."""
    if isinstance(labels, dict):
        pairs = [(n, str(name).strip(), str(text).strip()) for n, (name, text) in enumerate(labels.items(), start=1)]
        where = "the labels"
    elif isinstance(labels, (str, Path)) and Path(labels).is_file():
        where = str(labels)
        try:
            lines = Path(labels).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: cannot read the label file ({exc}); give UTF-8 text, one label per line")
        entries = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and not line.lstrip().startswith("#")]
    else:
        where = "--labels"
        parts = labels.split(",") if isinstance(labels, str) else list(labels)
        entries = list(enumerate(parts, start=1))
    if not isinstance(labels, dict):
        pairs = [(n, *(part.strip() for part in str(entry).partition(":")[::2])) for n, entry in entries]
    found: dict[str, str] = {}
    for n, name, description in pairs:
        if not name:
            raise InputError(f"{where}: label {n} is empty; give a name for every label (e.g. 'sport, politics')")
        if name in found:
            raise InputError(f"{where}: the label {name!r} is given twice; each label once")
        found[name] = description or name
    if len(found) < 2:
        raise InputError(f"{where}: {len(found)} label given; a classifier needs at least two")
    return found


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    if isinstance(templates, str):
        templates = [templates]
    checked = tuple(templates)
    if not checked:
        raise InputError("give at least one --template")
    for template in checked:
        if template.count("{}") != 1:
            raise InputError(f"--template {template!r} needs exactly one '{{}}' where the label goes, "
                             f"e.g. 'a text about {{}}'")
    return checked



def prompt_prototypes(backbone: Any, texts: Sequence[str], templates: Sequence[str]) -> Any:
    """``(len(texts), dim)`` unit rows: each text put in every template, embedded by ``backbone``
    (a text :class:`zoo.backbone.Backbone`), L2-normalised, averaged and normalised again."""
    import numpy as np

    rows = []
    for text in texts:
        embedded = backbone.embed([template.replace("{}", text) for template in templates]).float().cpu().numpy()
        embedded = embedded / np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-12)
        rows.append(embedded.mean(axis=0))
    prototypes = np.stack(rows)
    return (prototypes / np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class ClassPrompts:
    """The class names' zero-shot classifier: ``prototypes`` (classes, dim) unit rows, the
    ``templates`` they were embedded in, and, for an image-text model, its own ``scale``, ``bias``
    and ``scoring`` (``scale`` is None for a text encoder, which was not trained with one)."""

    prototypes: Any
    templates: tuple[str, ...]
    scale: float | None = None
    bias: float = 0.0
    scoring: str = "softmax"
    tower: Any = None  # the text backbone that embedded the prompts

    @property
    def scores(self) -> dict[str, Any]:
        """:class:`zoo.embed.FewShot`'s ``scale``, ``bias`` and ``scoring`` (empty for a text encoder)."""
        return {} if self.scale is None else {"scale": self.scale, "bias": self.bias, "scoring": self.scoring}


def class_prompts(card: Any, texts: Sequence[str], templates: Sequence[str] | None = None, *,
                  engine: str = "auto") -> ClassPrompts:
    """Each of ``texts`` (a class's name or description) in every template (default: those of the
    inputs' modality, :func:`default_templates`), embedded by the model itself (a text encoder) or
    by an image-text model's text tower, and averaged into one unit prototype per class."""
    from zoo.card import tower_card
    from zoo.loading import load

    chosen = check_templates(default_templates(card.modality) if templates is None else templates)
    text = card if card.text is None else tower_card(card, "text")
    tower = load(text, engine=engine)
    prototypes = prompt_prototypes(tower, list(texts), chosen)
    if text is card:
        return ClassPrompts(prototypes, chosen, tower=tower)
    return ClassPrompts(prototypes, chosen, **joint_scores(tower, card), tower=tower)


def joint_scores(backbone: Any, card: Any) -> dict[str, Any]:
    """An image-text model's ``scale``, ``bias`` and ``scoring``: the logit scale and bias its
    weights hold (its adapter puts them on the tower it builds as ``joint_scores``), else those
    its card states."""
    held = getattr(backbone.body, "joint_scores", None) or {}
    scale = held.get("logit_scale", card.joint.logit_scale)
    if scale is None:
        raise LoadError(f"model {card.name!r}: its adapter gives no logit scale and its card states none (joint."
                        f"logit_scale); add it to the card")
    bias = held.get("logit_bias", card.joint.logit_bias)
    return {"scale": float(scale), "bias": float(bias or 0.0), "scoring": card.joint.scoring}
