"""``zoo search``: the nearest stored items to an image or a text, by cosine similarity.

The query is embedded by the model that made the table (checked against the table's recorded
weights and preprocessing), L2-normalised and looked up: an exact flat scan on tables without an
index, the IVF_FLAT index on larger ones (a third of its partitions probed). A query of another
modality than the table's (an image path for a text table) is refused before the model loads
(:mod:`zoo.embed.queries`).

A table of an image-text model (CLIP, SigLIP) takes a sentence too: it is embedded by the model's
text tower, whose identity the table recorded when it was made (a changed tower is refused like
changed weights). ``exported``: the towers as ``zoo export`` wrote them (``MODEL.onnx``,
``MODEL.text.onnx``), run by the torch-free runtime instead of PyTorch, each checked to be the
tower the table recorded; a service answers text queries against an image table without torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.embed.store import VectorStore
from zoo.errors import ZooError

__all__ = ["Searcher", "SearchResult", "search"]


@dataclass(frozen=True)
class SearchResult:
    """The hits for one query, best first, and how they were found."""

    db: str
    table: str
    model: str
    query: str
    k: int
    method: str  # "exact" or "ann (...)"
    hits: tuple[Any, ...]  # zoo.embed.store.Hit
    seconds: float  # embedding the query and searching (the model load excluded)

    def to_dict(self) -> dict[str, Any]:
        return {"db": self.db, "table": self.table, "model": self.model, "query": self.query, "k": self.k,
                "method": self.method, "seconds": round(self.seconds, 6), "hits": [h.to_dict() for h in self.hits]}


class Searcher:
    """Queries one table and keeps its model loaded, for many queries in one process."""

    def __init__(self, db: str | Path, table: str | None = None, *, device: str | None = None,
                 engine: str = "auto", registry_files: Any = (), exported: Sequence[str | Path] = ()) -> None:
        self.table = VectorStore(db).table(table)
        self.registry_files = tuple(registry_files)  # where the table's model card is, besides the user's
        self.device = device
        self.engine = engine
        self._backbones: dict[str, Any] = {}  # modality -> the tower that embeds it (a Backbone or an OnnxModel)
        for path in exported:
            model = _exported_tower(path, self.table)
            self._backbones[model.info.modality] = model
        state = self.table.index()
        self.method = "exact" if state is None else f"ann ({state.describe()})"

    @property
    def backbone(self) -> Any:
        """The table's model, loaded on first use and checked to make the table's kind of vectors."""
        return self.tower(self.table.info.modality)

    def tower(self, modality: str) -> Any:
        """What embeds queries of ``modality``: the table's model (for an image-text model's
        table and a text, its text tower), loaded on first use and checked to make the vectors
        the table recorded; or the exported tower given for it."""
        if modality not in self._backbones:
            if self._backbones:  # exported towers were given: no PyTorch behind them
                raise ZooError(f"table {self.table.name!r}: no exported tower embeds {modality} queries (given: "
                               f"{', '.join(sorted(self._backbones))}); give its ONNX file too, as `zoo export "
                               f"{self.table.info.model}` wrote it")
            self._backbones[modality] = self._load(modality)
        return self._backbones[modality]

    def _load(self, modality: str) -> Any:
        from zoo.embed.embedder import resolve_embedder
        from zoo.pulling import check_same_weights

        info = self.table.info
        embedder = resolve_embedder(info.model, self.registry_files)
        if info.front_end:  # sounds: read the query as the table's clips were read
            embedder = embedder.reading(info.modality, info.front_end)
        fetched = embedder.fetched
        check_same_weights(info.weights, fetched, f"table {self.table.name!r} in {self.table.store.path}")
        if embedder.identity != info.embedder:
            raise ZooError(
                f"table {self.table.name!r} was made by {info.describe()}, but {info.model!r} now has other "
                f"weights, cut point or preprocessing (revision {fetched.resolved or fetched.revision}): its "
                f"queries would not match the stored vectors. Embed the data again into a new --table")
        if modality != info.modality:
            embedder = embedder.tower(modality)
            if embedder.identity != (info.towers or {}).get(modality):
                raise ZooError(f"table {self.table.name!r} was made by {info.describe()}, whose {modality} tower "
                               f"it recorded; {info.model!r}'s {modality} tower now differs from it (another card or "
                               f"tokenizer), so its queries would not match the stored vectors. Embed the data again "
                               f"into a new --table")
        backbone = embedder.backbone(device=self.device)
        fetched = embedder.engine_fetched()
        if self.engine != "torch" and fetched is not None:
            from zoo.frozen.choice import frozen_pass

            # one query is too small to split over threads (see embed)
            backbone.use_engine(frozen_pass(backbone, fetched, engine=self.engine, threads=1, device=self.device))
        return backbone

    def route(self, query: Any, *, as_text: bool = False) -> str:
        """The modality of ``query`` among those the table takes (its own, and a text for an
        image-text model's), or one line refusing it, before any model loads
        (:func:`zoo.embed.queries.query_modality`). ``as_text``: the string is a text whatever it
        names (``--text``)."""
        from zoo.embed.queries import query_modality

        info = self.table.info
        return query_modality(query, info.modalities, holder=f"table {self.table.name!r} ({info.model})",
                              as_text=as_text)

    def check(self, query: Any, *, as_text: bool = False) -> None:
        """Refuse a query the table cannot take (:meth:`route`)."""
        self.route(query, as_text=as_text)

    def embed(self, query: Any, *, as_text: bool = False) -> Any:
        """The normalised query vector (a numpy row)."""
        import numpy as np

        from zoo.embed.ingest import normalize

        tower = self.tower(self.route(query, as_text=as_text))
        # onnxruntime's session for a query has its own one thread; PyTorch (``engine="torch"``) runs
        # with the caller's thread count, which is process-wide and so the caller's to set: `zoo
        # search` sets one (see the CLI), a service embedding many queries at once may want more.
        vectors = tower.embed([query])
        return normalize(vectors if isinstance(vectors, np.ndarray) else vectors.float().cpu().numpy())[0]

    def __call__(self, query: Any, k: int = 10, *, exact: bool = False, as_text: bool = False) -> SearchResult:
        self.tower(self.route(query, as_text=as_text))  # a wrong query costs no model load; loaded before the clock
        started = time.perf_counter()
        hits = self.table.search(self.embed(query, as_text=as_text), k, exact=exact)
        return SearchResult(db=str(self.table.store.path), table=self.table.name, model=self.table.info.model,
                            query=str(query) if isinstance(query, (str, Path)) else type(query).__name__, k=k,
                            method="exact" if exact else self.method, hits=tuple(hits),
                            seconds=time.perf_counter() - started)


def search(db: str | Path, query: Any, *, table: str | None = None, k: int = 10, exact: bool = False,
           device: str | None = None, engine: str = "auto", registry_files: Any = (),
           as_text: bool = False, exported: Sequence[str | Path] = ()) -> SearchResult:
    """The ``k`` items of ``table`` (default: the database's only table) nearest to ``query``: an image
    (path, PIL image, array) for an image table, a clip for a table of sounds, a text for a text
    table, and a text or an image for an image-text model's table (the text through its text
    tower). A string naming a file, a folder or a URL is refused as a text unless ``as_text``
    (``--text``) says it is the words to search for. ``exported``: ONNX towers from ``zoo export``
    that embed the query instead of PyTorch (:class:`Searcher`)."""
    return Searcher(db, table, device=device, engine=engine, registry_files=registry_files, exported=exported)(
        query, k, exact=exact, as_text=as_text)


def _exported_tower(path: str | Path, table: Any) -> Any:
    """An exported tower (``zoo export``'s ONNX embedding file) in the torch-free runtime, checked
    to be one whose vectors the table holds or recorded: the same model, and the identity of the
    tower of its modality (a text tower's file for text queries, the image tower's for images)."""
    from zoo.runtime import open_model

    model = open_model(path, threads=1)
    info, source = table.info, model.info.source
    where = f"{path} ({source.get('model')}, {model.info.modality} tower)"
    recorded = {**(info.towers or {}), info.modality: info.embedder}
    if model.info.kind != "embedding" or source.get("model") != info.model:
        raise ZooError(f"{where}: not a tower of {info.model!r}, which made table {table.name!r}; give the files "
                       f"`zoo export {info.model}` writes")
    if source.get("embedder") != recorded.get(model.info.modality):
        raise ZooError(f"{where}: not the {model.info.modality} tower table {table.name!r} recorded for "
                       f"{info.model!r} (other weights, card or tokenizer, or an export of another zoo); export the "
                       f"model again, or embed the data again into a new --table")
    return model
