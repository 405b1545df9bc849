"""``zoo search``: the nearest stored items to an image or a text, by cosine similarity.

The query is embedded by the model that made the table (checked against the table's recorded
weights and preprocessing), L2-normalised and looked up: an exact flat scan on tables without an
index, the IVF_FLAT index on larger ones (a third of its partitions probed). A query of another
modality than the table's (an image path for a text table) is refused before the model loads
(:mod:`zoo.embed.queries`).
"""

from __future__ import annotations

import time
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
                 engine: str = "auto", registry_files: Any = ()) -> None:
        self.table = VectorStore(db).table(table)
        self.registry_files = tuple(registry_files)  # where the table's model card is, besides the user's
        self.device = device
        self.engine = engine
        self._backbone: Any = None
        state = self.table.index()
        self.method = "exact" if state is None else f"ann ({state.describe()})"

    @property
    def backbone(self) -> Any:
        """The table's model, loaded on first use and checked to make the table's kind of vectors."""
        if self._backbone is None:
            from zoo.embed.embedder import resolve_embedder

            info = self.table.info
            embedder = resolve_embedder(info.model, self.registry_files)
            if info.front_end:  # sounds: read the query as the table's clips were read
                embedder = embedder.reading(info.modality, info.front_end)
            fetched = embedder.fetched
            from zoo.pulling import check_same_weights

            check_same_weights(info.weights, fetched, f"table {self.table.name!r} in {self.table.store.path}")
            if embedder.identity != info.embedder:
                raise ZooError(
                    f"table {self.table.name!r} was made by {info.describe()}, but {info.model!r} now has other "
                    f"weights, cut point or preprocessing (revision {fetched.resolved or fetched.revision}): its "
                    f"queries would not match the stored vectors. Embed the data again into a new --table")
            self._backbone = embedder.backbone(device=self.device)
            fetched = embedder.engine_fetched()
            if self.engine != "torch" and fetched is not None:
                from zoo.frozen.choice import frozen_pass

                # one query is too small to split over threads (see embed)
                self._backbone.use_engine(frozen_pass(self._backbone, fetched, engine=self.engine, threads=1,
                                                      device=self.device))
        return self._backbone

    def check(self, query: Any, *, as_text: bool = False) -> None:
        """Refuse a query that is not of the table's modality (:func:`zoo.embed.queries.check_query`),
        before the model loads. ``as_text``: the string is a text whatever it names (``--text``)."""
        from zoo.embed.queries import check_query

        info = self.table.info
        check_query(query, info.modality, holder=f"table {self.table.name!r} ({info.model})", as_text=as_text)

    def embed(self, query: Any, *, as_text: bool = False) -> Any:
        """The normalised query vector (a numpy row)."""
        from zoo.embed.ingest import normalize

        self.check(query, as_text=as_text)
        # onnxruntime's session for a query has its own one thread; PyTorch (``engine="torch"``) runs
        # with the caller's thread count, which is process-wide and so the caller's to set: `zoo
        # search` sets one (see the CLI), a service embedding many queries at once may want more.
        return normalize(self.backbone.embed([query]).float().cpu().numpy())[0]

    def __call__(self, query: Any, k: int = 10, *, exact: bool = False, as_text: bool = False) -> SearchResult:
        self.check(query, as_text=as_text)  # a wrong query costs no model load
        self.backbone  # loaded (once) before the clock starts
        started = time.perf_counter()
        hits = self.table.search(self.embed(query, as_text=as_text), k, exact=exact)
        return SearchResult(db=str(self.table.store.path), table=self.table.name, model=self.table.info.model,
                            query=str(query) if isinstance(query, (str, Path)) else type(query).__name__, k=k,
                            method="exact" if exact else self.method, hits=tuple(hits),
                            seconds=time.perf_counter() - started)


def search(db: str | Path, query: Any, *, table: str | None = None, k: int = 10, exact: bool = False,
           device: str | None = None, engine: str = "auto", registry_files: Any = (),
           as_text: bool = False) -> SearchResult:
    """The ``k`` items of ``table`` (default: the database's only table) nearest to ``query``: an image
    (path, PIL image, array) for an image table, a clip for a table of sounds, a text for a text
    table. A string naming a file, a folder or a URL is refused for a text table unless
    ``as_text`` (``--text``) says it is the words to search for."""
    return Searcher(db, table, device=device, engine=engine, registry_files=registry_files)(
        query, k, exact=exact, as_text=as_text)
