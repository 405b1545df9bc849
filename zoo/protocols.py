"""What sources and adapters look like to the core (typing only: nothing here imports torch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zoo.card import ModelCard
from zoo.fetched import Fetched
from zoo.schema import Field

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

    from zoo.cache import Cache

__all__ = ["Source", "Adapter"]


@runtime_checkable
class Source(Protocol):
    """Where a model's files come from (a card's ``source.type``)."""

    name: str
    fields: Mapping[str, Field]

    def revision(self, card: ModelCard) -> str:
        """The cache folder name for this card's files, known offline (e.g. 'IMAGENET1K_V2', 'main')."""

    def locator(self, card: ModelCard) -> str:
        """Where the files come from, for the pull record (URL, repo id, path, package resource)."""

    def fetch(self, card: ModelCard, cache: Cache) -> Fetched:
        """Bring the card's files into ``cache`` (or find them in place) and return the record.

        Network sources download through ``cache.download`` (atomic, resumable, verified, and it
        refuses to open a socket in offline mode)."""


@runtime_checkable
class Adapter(Protocol):
    """How fetched files become a network (a card's ``adapter.type``)."""

    name: str
    fields: Mapping[str, Field]

    def build(self, card: ModelCard, fetched: Fetched | None) -> nn.Module:
        """The whole pretrained network, head included, in eval mode.

        ``fetched=None`` builds the architecture with random weights (for checks that need no
        download); an adapter that needs files to know the architecture raises LoadError."""

    def extractor(self, card: ModelCard, model: nn.Module, nodes: Sequence[str]) -> nn.Module:
        """A module whose forward returns ``{node: tensor}`` for the given nodes of ``model``.

        Image networks take a batch of images; text networks take ``input_ids`` and
        ``attention_mask``, and their nodes are ``last_hidden_state`` or stage names."""

    def tokenizer(self, card: ModelCard, fetched: Fetched) -> Any:
        """Text models only: a tokenizer called as ``tok(texts, padding=True, truncation=True,
        max_length=..., return_tensors='pt')``."""
