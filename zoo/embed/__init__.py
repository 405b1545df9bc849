"""Embeddings as a product: a vector database of a dataset's embeddings, search, and few-shot
classification without training.

- :func:`embed_dataset` / :func:`delete_items` (``zoo embed``): L2-normalised embeddings in a
  LanceDB table, one model per table, added incrementally by content hash, deleted on demand;
- :func:`search` / :class:`Searcher` (``zoo search``): nearest stored items to an image or a text;
- :func:`fewshot` / :func:`load_fewshot` (``zoo fewshot``): a nearest-centroid classifier;
  :func:`zero_shot` (``zoo fewshot --labels``): the same from label names alone.

The names load on first use: LanceDB and torch are imported only by the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from zoo.embed.ingest import DeleteReport, EmbedReport, delete_items, embed_dataset, read_items
    from zoo.embed.prototypes import FewShot, Prediction, fewshot, load_fewshot, zero_shot
    from zoo.embed.query import Searcher, SearchResult, search
    from zoo.embed.store import Hit, Table, TableInfo, VectorStore

_LAZY = {
    "embed_dataset": "zoo.embed.ingest",
    "delete_items": "zoo.embed.ingest",
    "read_items": "zoo.embed.ingest",
    "EmbedReport": "zoo.embed.ingest",
    "DeleteReport": "zoo.embed.ingest",
    "search": "zoo.embed.query",
    "Searcher": "zoo.embed.query",
    "SearchResult": "zoo.embed.query",
    "VectorStore": "zoo.embed.store",
    "Table": "zoo.embed.store",
    "TableInfo": "zoo.embed.store",
    "Hit": "zoo.embed.store",
    "fewshot": "zoo.embed.prototypes",
    "load_fewshot": "zoo.embed.prototypes",
    "zero_shot": "zoo.embed.prototypes",
    "FewShot": "zoo.embed.prototypes",
    "Prediction": "zoo.embed.prototypes",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
