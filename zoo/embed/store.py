"""The vector store: LanceDB tables of L2-normalised embeddings, one embedding model per table.

A database is a folder (``--db PATH``) holding LanceDB tables. Each table row is one item::

    id       16 hex digits: sha256 of the source (stable for a path or a text)
    source   the absolute file path, the text itself, or where an array came from ("digits[12]")
    label    the class name from the data, or null
    content  sha256 of what the model saw (file bytes, text, array): the incremental key
    vector   float32[dim], L2-normalised, so the dot product is the cosine similarity

The table's Arrow schema carries a :class:`TableInfo` (key ``zoo``): the model, its revision and
an identity key over its weights, cut point and preprocessing. Vectors from another model, or
from the same model with other weights, are refused: mixed vectors would give meaningless
neighbours. ``<table>__deleted`` remembers the content hashes of deleted items (hashes only, never
the data), so that embedding the same folder again does not bring them back.

Search is exact (a flat scan) below :data:`INDEX_THRESHOLD` rows; from there an IVF_FLAT index
answers it (see :meth:`Table.maintain_index` for the choice). LanceDB is imported only here and
only when a store is opened.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.atomic import ensure_folder
from zoo.errors import STORAGE_ERRNOS, InputError, StorageError, ZooError, storage_error

__all__ = ["VectorStore", "Table", "TableInfo", "Hit", "IndexState", "INDEX_THRESHOLD", "PROBE_FRACTION",
           "table_name_for", "check_table_name", "forking_loaders", "writing"]

#: Rows from which a table gets an ANN index. A flat scan of 384-d vectors costs LanceDB 7-11 ms at
#: 5,000 rows and 13-17 ms at 10,000 on this 2-core machine (bench/search_speed.py), and an
#: IVF_FLAT index over 5,000 rows trains in well under a second.
INDEX_THRESHOLD = 5_000
#: Share of the IVF partitions probed per query. Recall@10 on real sentence embeddings (30,000
#: MiniLM vectors, bench/search_speed.py --real) follows the probed share, not the count: 0.91 at
#: 12%, 0.96 at 23-25%, 0.976-0.977 at 35-38%; latency hardly moves (3.4 ms at 20 of 316
#: partitions, 4.1 ms at 120), so a generous share is cheap.
PROBE_FRACTION = 0.35
#: Fewest partitions probed, for small indexes.
MIN_PROBES = 20
#: The index is rebuilt (centroids retrained) once the table has grown to this many times the
#: rows it was trained on; smaller growth is folded into the existing partitions by ``optimize``.
RETRAIN_GROWTH = 2.0

_META_KEY = b"zoo"
_DELETED = "__deleted"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_IN_CHUNK = 2_000  # ids per "id IN (...)" filter
_INDEX_NAME = re.compile(r"^zoo_ivf_flat_p(\d+)_n(\d+)$")  # partitions and training rows ride in the name


@dataclass(frozen=True)
class TableInfo:
    """What made a table's vectors; stored in the table's schema and checked on every add and query."""

    model: str
    revision: str
    embedder: str  # identity of weights + cut point + preprocessing (zoo.frozen.features.feature_key)
    modality: str
    dim: int
    metric: str = "cosine"  # vectors are L2-normalised and searched by dot product
    zoo_version: str = ""
    created_at: str = ""
    weights: dict[str, str] = field(default_factory=dict)  # {file: sha256} of the pulled model's files
    # sounds for an image backbone: the front end's declaration (zoo.card.FrontEndSpec.to_dict())
    front_end: dict[str, Any] | None = None
    # an image-text model: each tower's identity by the modality it embeds (the stored vectors'
    # tower is ``embedder``); a query of the other modality goes through the other tower
    towers: dict[str, str] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "the table's zoo record") -> TableInfo:
        """The record as written by :meth:`to_json`; anything else (garbled or truncated JSON, a key
        twice or missing, a value of the wrong type) is a :class:`ZooError` naming ``where``."""
        from zoo.strictjson import read_record

        try:
            data = read_record(text, _REQUIRED, _CHECKS)
        except ValueError as exc:
            raise _damaged(where, str(exc)) from None
        front_end = data.get("front_end")
        if front_end is not None and front_end.get("modality") != data["modality"]:
            raise _damaged(where, f"its front end reads {front_end.get('modality')!r} but it holds "
                                  f"{data['modality']!r} embeddings")
        towers = data.get("towers")
        if towers is not None and towers.get(data["modality"]) != data["embedder"]:
            raise _damaged(where, f"its towers {sorted(towers)} do not include the {data['modality']} tower that "
                                  f"made its vectors")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def describe(self) -> str:
        return f"{self.model} (revision {self.revision}, {self.dim}-d {self.modality} embeddings)"

    @property
    def modalities(self) -> tuple[str, ...]:
        """What a query may be: the stored vectors' modality first, then the other towers'."""
        return (self.modality, *sorted(set(self.towers or ()) - {self.modality}))


_REQUIRED = ("model", "revision", "embedder", "modality", "dim")


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _modality(value: Any) -> bool:
    from zoo.data.dataset import MODALITIES

    return value in MODALITIES


#: What each recorded value must be; a value that is not was not written by zoo.
_CHECKS = {
    "model": _text, "revision": lambda v: isinstance(v, str), "embedder": _text, "modality": _modality,
    "dim": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "metric": lambda v: v == "cosine",
    "weights": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in (*v, *v.values())),
    "front_end": lambda v: v is None or (isinstance(v, dict) and _text(v.get("name")) and _text(v.get("modality"))
                                         and isinstance(v.get("params", {}), dict)),
    "towers": lambda v: v is None or (isinstance(v, dict) and len(v) > 1
                                      and all(_modality(k) and _text(x) for k, x in v.items())),
    "zoo_version": lambda v: isinstance(v, str), "created_at": lambda v: isinstance(v, str),
}


def _damaged(where: str, why: str) -> ZooError:
    return ZooError(f"{where} is damaged ({why}); embed the data again into another --table, or remove the "
                    f"table's folder and embed again")


@dataclass(frozen=True)
class Hit:
    """One search result: the stored item and its cosine similarity to the query."""

    rank: int
    id: str
    score: float
    label: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IndexState:
    """A table's ANN index: its type and how many rows it covers; rows added since are scanned flat."""

    name: str
    kind: str
    indexed: int
    unindexed: int
    partitions: int | None  # known for the indexes zoo builds
    trained_on: int | None  # rows when the centroids were trained (zoo's indexes)

    @property
    def nprobes(self) -> int:
        """Partitions probed per query: :data:`PROBE_FRACTION` of them, at least :data:`MIN_PROBES`."""
        if self.partitions is None:
            return MIN_PROBES
        return min(self.partitions, max(MIN_PROBES, math.ceil(PROBE_FRACTION * self.partitions)))

    def describe(self) -> str:
        probes = f"{self.nprobes} of {self.partitions} partitions probed" if self.partitions else f"nprobes {self.nprobes}"
        new = f"; {self.unindexed} new rows scanned exactly" if self.unindexed else ""
        return f"{self.kind}, {probes}{new}"


def table_name_for(model: str) -> str:
    """The default table of a model: its name, made safe for a table name ('org/m' -> 'org--m')."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "-", model.replace("/", "--"))
    return name.lstrip(".-") or "embeddings"


def check_table_name(name: str) -> str:
    if not _NAME.match(name) or name.endswith(_DELETED):
        raise InputError(f"table name {name!r} is not usable: use letters, digits, '_', '-' and '.', "
                         f"up to 128 characters, not ending in {_DELETED!r}")
    return name


class VectorStore:
    """A LanceDB database folder; open or create tables of embeddings."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path).expanduser()
        if not create and not self.path.is_dir():
            raise InputError(f"no vector database at {self.path}; create one with "
                             f"`zoo embed MODEL DATA --db {self.path}`")
        import lancedb

        ensure_folder(self.path, _FIX)  # a file there, or a read-only place: one line naming it
        self._db = lancedb.connect(str(self.path))

    def tables(self) -> list[str]:
        """The names of the embedding tables (the deletion registers are internal)."""
        return sorted(n for n in _list_tables(self._db) if not n.endswith(_DELETED))

    def has(self, name: str) -> bool:
        return name in _list_tables(self._db)

    def table(self, name: str | None = None) -> Table:
        """An existing table; ``None`` picks the only one, or says which exist."""
        names = self.tables()
        if name is None:
            if len(names) == 1:
                name = names[0]
            elif not names:
                raise InputError(f"{self.path}: the database holds no tables yet; add items with "
                                 f"`zoo embed MODEL DATA --db {self.path}`")
            else:
                raise InputError(f"{self.path}: the database holds {len(names)} tables ({', '.join(names)}); "
                                 f"choose one with --table")
        if name not in names:
            known = f"; it has: {', '.join(names)}" if names else ""
            raise InputError(f"{self.path}: no table {name!r}{known}")
        return Table(self, name)

    def create(self, name: str, info: TableInfo) -> Table:
        """A new empty table for ``info``'s model (the caller holds :meth:`lock`)."""
        import pyarrow as pa

        check_table_name(name)
        schema = pa.schema([
            pa.field("id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("label", pa.string()),
            pa.field("content", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), info.dim), nullable=False),
        ], metadata={_META_KEY: info.to_json().encode()})
        try:
            with writing(self.path / f"{name}.lance"):
                self._db.create_table(name, schema=schema)
        except BaseException:
            self.drop(name)  # LanceDB leaves a folder without a version behind: no table, yet in the list
            raise
        return Table(self, name)

    def drop(self, name: str) -> None:
        """Remove a table that a failed ``zoo embed`` created (the caller holds :meth:`lock`), so no
        half-made table stays at its final name."""
        import shutil

        shutil.rmtree(self.path / f"{name}.lance", ignore_errors=True)

    def lock(self, name: str) -> Any:
        """An inter-process lock for writers of one table: read keys, add and delete as one step."""
        import filelock

        path = ensure_folder(self.path / ".zoo-locks", _FIX) / f"{name}.lock"
        with writing(path):
            path.touch()
        return filelock.FileLock(str(path))


class Table:
    """One table of a :class:`VectorStore`."""

    def __init__(self, store: VectorStore, name: str) -> None:
        self.store = store
        self.name = name
        try:
            self._lance = store._db.open_table(name)
        except ValueError:  # a folder of that name without a committed version: cut short outside zoo
            raise ZooError(f"{self.folder}: holds no complete table (its first write was cut short); remove "
                           f"the folder and embed again") from None
        schema = self._lance.schema
        metadata = schema.metadata or {}
        if _META_KEY not in metadata:
            raise ZooError(f"{store.path}: table {name!r} was not made by `zoo embed` (no zoo metadata in "
                           f"its schema); use another --table")
        where = f"{self.folder}: the zoo record of table {name!r}"
        self.info = TableInfo.from_json(metadata[_META_KEY], where)
        stored = _vector_size(schema)
        if stored != self.info.dim:
            raise _damaged(where, f"it says {self.info.dim}-d vectors, the table stores "
                                  + (f"{stored}-d ones" if stored else "no vector column of fixed size"))
        self._index: IndexState | None | bool = False  # False: not looked up yet

    @property
    def folder(self) -> Path:
        """Where LanceDB keeps the table (``DB/NAME.lance``)."""
        return self.store.path / f"{self.name}.lance"

    def __len__(self) -> int:
        return self._lance.count_rows()

    def __repr__(self) -> str:
        return f"<Table {self.name!r} of {self.store.path}: {self.info.describe()}>"

    # ----------------------------------------------------------------- reading

    def keys(self) -> dict[str, list[Any]]:
        """Columns id, source, label and content of every row (no vectors)."""
        data = self._lance.search().select(["id", "source", "label", "content"]).limit(None).to_arrow()
        return {name: data[name].to_pylist() for name in ("id", "source", "label", "content")}

    def vectors_for(self, contents: Iterable[str]) -> dict[str, Any]:
        """One stored vector per content hash (numpy float32), for items whose content is already here."""
        import numpy as np

        wanted = sorted(set(contents))
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start:start + _IN_CHUNK]
            data = (self._lance.search().where(f"content IN ({_quoted(chunk)})")
                    .select(["content", "vector"]).limit(None).to_arrow())
            vectors = _matrix(data["vector"], self.info.dim)
            for content, vector in zip(data["content"].to_pylist(), vectors):
                found.setdefault(content, np.array(vector))
        return found

    def search(self, vector: Any, k: int = 10, *, exact: bool = False, nprobes: int | None = None) -> list[Hit]:
        """The ``k`` nearest rows by cosine similarity; ``exact`` scans every row even with an index;
        ``nprobes`` overrides the partitions probed (default: :meth:`IndexState.nprobes`)."""
        import numpy as np

        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.info.dim:
            raise InputError(f"table {self.name!r} holds {self.info.dim}-d vectors; the query has {query.shape[0]}")
        builder = (self._lance.search(query, vector_column_name="vector").distance_type("dot").limit(k)
                   .select(["id", "source", "label", "_distance"]))
        state = None if exact else self.index(cached=True)
        if exact:
            builder = builder.bypass_vector_index()
        elif state is not None or nprobes is not None:
            builder = builder.nprobes(nprobes or state.nprobes)  # type: ignore[union-attr]
        data = builder.to_arrow()
        rows = zip(data["id"].to_pylist(), data["_distance"].to_pylist(), data["label"].to_pylist(),
                   data["source"].to_pylist())
        # LanceDB's dot "distance" is 1 - q.v: the score is the cosine similarity again
        return [Hit(rank, id_, round(1.0 - distance, 6), label, source)
                for rank, (id_, distance, label, source) in enumerate(rows, start=1)]

    def index(self, *, cached: bool = False) -> IndexState | None:
        """The vector index, or None; ``cached`` reuses the last answer (searches do: it costs a few ms)."""
        if cached and self._index is not False:
            return self._index  # type: ignore[return-value]
        self._index = None
        for config in self._lance.list_indices():
            if "vector" in config.columns:
                stats = self._lance.index_stats(config.name)
                named = _INDEX_NAME.match(config.name)
                self._index = IndexState(config.name, stats.index_type, stats.num_indexed_rows,
                                         stats.num_unindexed_rows, int(named.group(1)) if named else None,
                                         int(named.group(2)) if named else None)
                break
        return self._index

    def deleted_contents(self) -> set[str]:
        """Content hashes deleted from this table: they are never added again."""
        name = self.name + _DELETED
        if not self.store.has(name):
            return set()
        data = self.store._db.open_table(name).search().select(["content"]).limit(None).to_arrow()
        return set(data["content"].to_pylist())

    # ----------------------------------------------------------------- writing (hold store.lock)

    def add(self, ids: Sequence[str], sources: Sequence[str], labels: Sequence[str | None],
            contents: Sequence[str], vectors: Any) -> None:
        """Append rows; ``vectors`` is an (n, dim) float32 array, already L2-normalised."""
        if not len(ids):
            return
        with writing(self.folder):
            self._lance.add(self._batch(ids, sources, labels, contents, vectors))

    def _batch(self, ids: Sequence[str], sources: Sequence[str], labels: Sequence[str | None],
               contents: Sequence[str], vectors: Any) -> Any:
        import numpy as np
        import pyarrow as pa

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.info.dim):
            raise ZooError(f"table {self.name!r}: {vectors.shape} vectors for {len(ids)} rows of {self.info.dim}-d")
        return pa.table({
            "id": pa.array(ids, pa.string()), "source": pa.array(sources, pa.string()),
            "label": pa.array(labels, pa.string()), "content": pa.array(contents, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.info.dim),
        }, schema=self._lance.schema)

    def upsert(self, ids: Sequence[str], sources: Sequence[str], labels: Sequence[str | None],
               contents: Sequence[str], vectors: Any) -> None:
        """Rows with these ids replaced, the others added, in one commit (LanceDB's merge_insert on
        ``id``): a process killed mid-way leaves the table as it was before or after, never with the
        old rows deleted and the new ones missing."""
        if not len(ids):
            return
        batch = self._batch(ids, sources, labels, contents, vectors)
        with writing(self.folder):
            self._lance.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(batch)

    @property
    def version(self) -> int:
        """The table's commit number (LanceDB's version): one more per add, upsert or delete."""
        return int(self._lance.version)

    def delete_ids(self, ids: Iterable[str]) -> None:
        ids = sorted(set(ids))
        with writing(self.folder):
            for start in range(0, len(ids), _IN_CHUNK):
                self._lance.delete(f"id IN ({_quoted(ids[start:start + _IN_CHUNK])})")

    def remember_deleted(self, contents: Iterable[str]) -> None:
        import pyarrow as pa

        from zoo.fetched import now_utc

        contents = sorted(set(contents) - self.deleted_contents())
        if not contents:
            return
        data = pa.table({"content": pa.array(contents, pa.string()),
                         "deleted_at": pa.array([now_utc()] * len(contents), pa.string())})
        name = self.name + _DELETED
        with writing(self.store.path / f"{name}.lance"):
            if self.store.has(name):
                self.store._db.open_table(name).add(data)
            else:
                self.store._db.create_table(name, data)

    def purge(self) -> None:
        """Rewrite the data files without deleted rows and drop older versions, so that deleted
        vectors, paths and texts leave the disk (LanceDB deletes by marking rows, and keeps every
        version until it is cleaned up). Readers of an older version of this table lose it."""
        from datetime import timedelta

        for name in (self.name, self.name + _DELETED):
            if self.store.has(name):
                with warnings.catch_warnings(), writing(self.store.path / f"{name}.lance"):
                    warnings.filterwarnings("ignore", message=".*removes every version.*")  # the point here
                    self.store._db.open_table(name).optimize(cleanup_older_than=timedelta(0))
        self._index = False

    def maintain_index(self, build: bool | None = None) -> str | None:
        """Create or update the ANN index; returns what was done, or None.

        ``build``: None = from :data:`INDEX_THRESHOLD` rows, True = now whatever the size, False = never.

        IVF_FLAT, the choice: k-means partitions that keep the full float32 vectors, so scores are
        exact and recall depends only on the share of partitions probed (:data:`PROBE_FRACTION`);
        sqrt(rows) partitions; it trains in seconds (4-13 s for 30,000-100,000 vectors here) and
        needs no tuning. Measured against it (bench/search_speed.py): IVF_PQ needs refine_factor 10
        to pass 0.95 (0.31 without: 24 sub-vectors lose too much for top-10 ranking) and trains for
        ~95 s on 100,000 vectors; IVF_HNSW_SQ gives 0.90 on real sentence embeddings without
        refinement (0.99 with refine_factor 5, at 6-7 ms) and trains for ~40 s on 30,000 and ~160 s
        on 100,000. Compression pays from tens of millions of vectors, beyond one machine's
        embedding budget; IVF_FLAT doubles the table's disk size instead.
        """
        rows = len(self)
        state = self.index()
        if state is None:
            if build is False or (build is None and rows < INDEX_THRESHOLD) or rows == 0:
                return None
            return self.build_index()
        if state.unindexed == 0:
            return None
        trained_on = state.trained_on or state.indexed
        if trained_on * RETRAIN_GROWTH <= rows:
            return self.build_index() + f" (the table grew {rows / max(trained_on, 1):.1f}x since the last one)"
        with writing(self.folder):
            self._lance.optimize()
        self._index = False
        return f"added {state.unindexed} rows to the index"

    def build_index(self, partitions: int | None = None) -> str:
        """(Re)build the IVF_FLAT index now, with ``partitions`` (default: sqrt(rows), at most rows/32)."""
        from lancedb.index import IvfFlat

        rows = len(self)
        partitions = partitions or max(1, min(int(math.sqrt(rows)), rows // 32 or 1))
        old = [c.name for c in self._lance.list_indices() if "vector" in c.columns]
        name = f"zoo_ivf_flat_p{partitions}_n{rows}"
        with writing(self.folder):
            self._lance.create_index("vector", config=IvfFlat(distance_type="dot", num_partitions=partitions),
                                     replace=True, name=name)
            for stale in old:  # built first, dropped after: searches always have an index
                if stale != name:
                    self._lance.drop_index(stale)
        self._index = False
        return f"built an IVF_FLAT index over {rows} rows ({partitions} partitions)"


#: How a user moves a vector database elsewhere, for the one-line storage errors.
_FIX = "choose another --db"
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """A LanceDB write to ``path`` (a table's folder): a place that cannot hold it (disk full, a
    file size limit, read-only, a file where a folder must be) becomes one
    :class:`~zoo.errors.StorageError` line naming it. LanceDB's Rust core reports an OS error as a
    ``RuntimeError`` whose text carries ``(os error N)``, not as an ``OSError``: its number is
    read from there, since no attribute holds it."""
    try:
        yield
    except StorageError:
        raise
    except (OSError, RuntimeError) as exc:
        found = _OS_ERROR.search(str(exc)) if not isinstance(exc, OSError) else None
        code = exc.errno if isinstance(exc, OSError) else int(found.group(1)) if found else None
        if code not in STORAGE_ERRNOS:
            raise
        raise storage_error(OSError(code, os.strerror(code)), path, _FIX) from None


@contextmanager
def forking_loaders() -> Iterator[None]:
    """Around embedding with DataLoader workers in a process that has used LanceDB.

    LanceDB warns at every fork that its async runtime is reset in the child and that a deadlock
    could follow if one of its operations was in flight. zoo forks its loader workers only between
    store operations (keys are read before embedding, rows written after) and the workers never
    touch LanceDB, so the warning is silenced here, and only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="lancedb fork support is experimental", category=RuntimeWarning)
        yield


def _vector_size(schema: Any) -> int | None:
    """The length of the ``vector`` column's fixed-size lists, None where there is no such column."""
    import pyarrow as pa

    index = schema.get_field_index("vector")
    kind = schema.field(index).type if index >= 0 else None
    return kind.list_size if isinstance(kind, pa.FixedSizeListType) else None


def _list_tables(db: Any) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        page = db.list_tables(page_token=token)
        names += page.tables
        token = page.page_token
        if not token:
            return names


def _quoted(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _matrix(column: Any, dim: int) -> Any:
    """An Arrow fixed-size-list column as an (n, dim) float32 numpy array."""
    import numpy as np

    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False) if len(column) else np.zeros(0)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dim)
