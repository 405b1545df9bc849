"""Label names as prompts: parsing ``--labels``, checking ``--template``, and the prototype of a
label (its prompts embedded, normalised, averaged). Shared by zero-shot classifiers
(:func:`zoo.embed.zero_shot`: texts with a text encoder, images with an image-text model's text
tower) and the label-aware head of ``zoo finetune`` (:mod:`zoo.train.prior`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.errors import InputError

__all__ = ["TEMPLATES", "IMAGE_TEMPLATES", "default_templates", "parse_labels", "check_templates",
           "prompt_prototypes"]

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
