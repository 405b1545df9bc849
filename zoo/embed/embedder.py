"""What makes a table's vectors: a registry model at its card's cut point, or a fine-tuning run.

``zoo embed MODEL DATA`` and ``zoo embed RUN_DIR DATA`` store vectors the same way; a run embeds
with its own backbone: cut where the run chose (``config.json``'s ``cut``), with the stages it
trained. The table records the embedder's name (``run:/absolute/path`` for a run) and identity
(weights, cut, preprocessing, and for a run its final checkpoint's sha256), so ``zoo search``
embeds queries with the same network and refuses a table whose maker has changed. An image-text
model's table also records its text tower's identity (:meth:`Embedder.towers`): a sentence is
embedded by that tower, checked the same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import InputError, ZooError

__all__ = ["Embedder", "resolve_embedder", "embedder_identity", "is_run_folder", "RUN_PREFIX"]

RUN_PREFIX = "run:"


@dataclass(frozen=True)
class Embedder:
    name: str  # what the table records: the card's name, or run:/path
    card: Any
    fetched: Any
    identity: str
    dim: int
    run_dir: Path | None = None
    trained_body: bool = False  # the run changed backbone weights (unfrozen stages)

    @property
    def uses_feature_cache(self) -> bool:
        """Vectors at the card's cut point, of pulled weights: the shared feature cache applies."""
        return self.run_dir is None

    def backbone(self, device: Any = None) -> Any:
        from zoo.loading import load

        if self.run_dir is None:
            return load(self.card, device=device)
        from zoo.runs import open_run

        return open_run(self.run_dir).load_model(device=device).backbone.eval()

    def reading(self, modality: str, settings: Any = None) -> Embedder:
        """This embedder reading ``modality`` data through a front end (sounds for an image
        backbone; ``zoo.frontend.bridge``), its identity recomputed so the table records it; itself
        for data of the card's own modality. ``settings``: the user's, or a table's declaration."""
        from dataclasses import replace

        from zoo.frontend import bridge, declared

        if modality == self.card.modality and self.card.input.front_end is None:
            return self
        if self.card.input.front_end is not None:  # a run's card already reads it: its declaration stands
            reads = self.card.input.front_end.modality
            if modality != reads:
                raise InputError(f"{self.name} was trained on {reads} data (through its front end "
                                 f"{self.card.input.front_end.name!r}): it embeds {reads}, not {modality} data")
            if settings and dict(settings) != declared(self.card):  # a table's record of it is that declaration
                raise ZooError(f"{self.name}: the run declared its front end, so front-end settings do not apply; "
                               f"leave out --front-end")
            return self
        card = bridge(self.card, modality, settings)
        identity = embedder_identity(card, self.fetched) if self.run_dir is None else _run_identity(
            card, self.fetched, self.identity)
        return replace(self, card=card, identity=identity)

    def tower(self, modality: str) -> Embedder:
        """This model's tower that embeds ``modality`` (an image-text model's text tower, as the
        card :func:`zoo.card.tower_card` makes), itself for its own modality; an InputError for
        a model without one."""
        from dataclasses import replace

        from zoo.card import tower_card

        if modality == self.card.modality:
            return self
        if self.run_dir is not None or modality not in self.card.towers:
            made = "a fine-tuning run" if self.run_dir is not None else "a model"
            raise InputError(f"{self.name} is {made} without a {modality} tower: it embeds {self.card.modality} "
                             f"data only; an image-text model (zoo list --tag image-text) embeds both")
        card = tower_card(self.card, modality)
        return replace(self, card=card, identity=embedder_identity(card, self.fetched), dim=card.embedding.dim)

    def towers(self) -> dict[str, str] | None:
        """Every tower's identity, by the modality it embeds, for an image-text model (what a
        table records, so that a query through another tower, or a changed one, is refused);
        None for a model of one tower."""
        if self.run_dir is not None or len(self.card.towers) < 2 or self.card.tower is not None:
            return None
        return {modality: self.tower(modality).identity for modality in self.card.towers}

    def engine_fetched(self) -> Any:
        """The pulled files the compiled frozen pass may be keyed by; None (PyTorch only) when the
        run trained backbone weights, which no pulled file describes."""
        return None if self.trained_body else self.fetched


def _run_identity(card: Any, fetched: Any, base: str) -> str:
    return hashlib.sha256(json.dumps({"base": base, "front_end": embedder_identity(card, fetched)}).encode()).hexdigest()[:32]


def embedder_identity(card: Any, fetched: Any) -> str:
    """Weights, cut point and preprocessing in one key: equal keys give comparable vectors. It is the
    feature cache's key for no data, so the two can never disagree about what changes embeddings."""
    from zoo.frozen.features import feature_key

    return feature_key(card, fetched, "")


def is_run_folder(path: Path) -> bool:
    """A ``zoo finetune`` run folder (what ``zoo embed RUN`` takes instead of a model name)."""
    return (path / "config.json").is_file() and (path / "labels.json").is_file()


def resolve_embedder(model: str | Path, registry_files: Any = (), *, quiet: bool = True) -> Embedder:
    """The embedder for a model name, a run folder, or a table's recorded ``run:`` name."""
    from zoo.pulling import pull, resolve_card

    text = str(model)
    folder = Path(text[len(RUN_PREFIX):]) if text.startswith(RUN_PREFIX) else Path(text)
    if not (text.startswith(RUN_PREFIX) or is_run_folder(folder)):
        card = resolve_card(text, registry_files)
        fetched = pull(card, quiet=quiet)
        return Embedder(card.name, card, fetched, embedder_identity(card, fetched), card.embedding.dim)
    import torch

    from zoo.backbone import cut_dim
    from zoo.runs import open_run

    if not is_run_folder(folder):
        raise ZooError(f"{folder}: the run folder that made this table is gone; embed the data again with a "
                       f"model or another run")
    final = folder / "checkpoints" / "final.pt"
    if not final.is_file():
        raise ZooError(f"{folder}: the run has no checkpoints/final.pt (did it finish?); finish it with "
                       f"`zoo finetune --resume {folder}`")
    run = open_run(folder)
    from zoo.frontend import with_front_end

    card = resolve_card(run.config["model"], tuple(registry_files) + tuple(run.config.get("registry") or ()))
    card = with_front_end(card, run.front_end)  # a run on sounds reads them as it was trained
    fetched = pull(card, quiet=quiet)
    from zoo.download import sha256_file

    checkpoint = sha256_file(final)[0]
    body = torch.load(final, map_location="cpu", weights_only=True).get("body") or {}
    identity = hashlib.sha256(json.dumps({"model": embedder_identity(card, fetched), "cut": list(run.cut or ()),
                                          "checkpoint": checkpoint}).encode()).hexdigest()[:32]
    dim = cut_dim(card, run.cut) if run.cut else card.embedding.dim
    return Embedder(f"{RUN_PREFIX}{folder.resolve()}", card, fetched, identity, dim, run_dir=folder.resolve(),
                    trained_body=bool(body))
