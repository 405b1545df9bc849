"""``zoo embed``: a dataset's embeddings into a table, incrementally; and deletion on demand.

Incremental by content: each item's key is the sha256 of what the model sees (file bytes, text,
array bytes), the same digest that fingerprints datasets for the feature cache, and its id is the
sha256 of its source (path or text). Run again on a folder and only items whose content is not in
the table yet go through the model:

- same source, same content, same label: unchanged, nothing is done;
- a new source whose content is already stored (a copy, a renamed or moved file), or a new label
  on stored content: the stored vector is reused;
- a source whose content changed: the old row is replaced by a fresh embedding;
- content deleted earlier (``delete_items``): skipped, never added again.

Hashing reads every file, which costs far less than embedding it (bench/embed_throughput.py), and
unlike path + mtime + size it is not fooled by a copied or restored file with a new mtime, nor by
an edit that keeps size and mtime; it also makes copies free.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.embed.embedder import embedder_identity  # noqa: F401 - re-exported: the table's identity key
from zoo.errors import InputError

__all__ = ["EmbedReport", "DeleteReport", "embed_dataset", "delete_items", "read_items", "normalize",
           "embedder_identity"]

_TEXT_FILES = (".txt",)


@dataclass(frozen=True)
class EmbedReport:
    """What one ``zoo embed`` did to its table."""

    db: str
    table: str
    model: str
    revision: str
    items: int  # usable items read from the data
    embedded: int  # computed by the model in this call
    reused: int  # rows that got a stored vector (a copy, a moved file, a new label): no model call
    replaced: int  # rows replaced because their source's content or label changed
    unchanged: int
    skipped_deleted: int  # content deleted from the table earlier
    duplicates: int  # the same source more than once in the data (the first one counts)
    skipped_bad: tuple[str, ...] = ()  # "where: why", with skip_bad
    rows: int = 0  # rows in the table afterwards
    index: str | None = None  # what happened to the ANN index
    feature_cache: str | None = None  # "hit" / "stored" when zoo finetune's feature cache was used
    engine: dict[str, Any] | None = None  # the frozen pass that computed new vectors (None: none computed)
    seconds: float = 0.0
    created: bool = False

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "skipped_bad": list(self.skipped_bad)}

    def summary(self) -> str:
        parts = [f"{self.embedded} embedded", f"{self.reused} reused", f"{self.unchanged} unchanged"]
        if self.replaced:
            parts.append(f"{self.replaced} replaced")
        if self.skipped_deleted:
            parts.append(f"{self.skipped_deleted} skipped (deleted earlier)")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate sources ignored")
        if self.skipped_bad:
            parts.append(f"{len(self.skipped_bad)} bad inputs skipped")
        lines = [f"{'created' if self.created else 'updated'} table {self.table!r} in {self.db}: "
                 f"{self.items} items, " + ", ".join(parts),
                 f"{self.rows} rows of {self.model} (revision {self.revision}) in {self.seconds:.1f}s"
                 + (f"; feature cache {self.feature_cache}" if self.feature_cache else "")
                 + (f"; engine {self.engine['engine']}" if self.engine else "")]
        if self.index:
            lines.append(f"index: {self.index}")
        return "\n".join(lines)


@dataclass(frozen=True)
class DeleteReport:
    """Rows removed per table, and the targets that matched nothing."""

    db: str
    removed: dict[str, int] = field(default_factory=dict)
    not_found: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"db": self.db, "removed": dict(self.removed), "not_found": list(self.not_found)}

    def summary(self) -> str:
        done = ", ".join(f"{n} from {t!r}" for t, n in self.removed.items() if n)
        lines = [f"removed {done} in {self.db}; their content is remembered and never added again" if done
                 else f"removed nothing in {self.db}"]
        if self.not_found:
            lines.append("not found: " + ", ".join(self.not_found))
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading the data

def read_items(data: str | Path, modality: str, *, skip_bad: bool = False) -> Any:
    """A ``zoo.data.Dataset`` for embedding: any labelled dataset zoo reads (class folders, CSV,
    JSONL, digits), or unlabelled inputs: a folder of images without class folders, one image
    file, or a ``.txt`` file with one text per line (label -1, stored as null).

    Problems (unreadable images, bad rows) raise one error listing them, unless ``skip_bad``.
    """
    from zoo.data import open_dataset
    from zoo.data.checks import problems_error

    try:
        dataset = open_dataset(data, modality=modality)
    except InputError:
        dataset = _unlabelled(Path(data), modality)
        if dataset is None:
            raise
    if dataset.problems and not skip_bad:
        raise problems_error(dataset.problems)
    if not len(dataset):
        raise InputError(f"{data}: no usable {modality} inputs to embed")
    return dataset


def _unlabelled(path: Path, modality: str) -> Any:
    from zoo.data.checks import front_end_check, item_problem, text_problem
    from zoo.data.dataset import Dataset, Example, Problem
    from zoo.data.formats import IMAGE_EXTENSIONS

    if modality == "image" and path.is_dir():
        items = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not items:
            raise InputError(f"{path}: no images in the folder and no class folders; give images "
                             f"({', '.join(sorted(IMAGE_EXTENSIONS))}) directly or in {path}/<class>/")
        wheres = [str(p) for p in items]
    elif modality == "image" and path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        items, wheres = [path], [str(path)]
    elif modality == "text" and path.is_file() and path.suffix.lower() in _TEXT_FILES:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read the texts ({exc}); save it as UTF-8, one text per line") from None
        numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
        items, wheres = [line for _, line in numbered], [f"{path}:{n}" for n, _ in numbered]
    elif sounds := _sounds_in(path):
        items, wheres, modality = sounds, [str(p) for p in sounds], "audio"
    else:
        return None
    check = {"image": item_problem, "text": text_problem}.get(modality) or front_end_check(modality)
    examples, problems = [], []
    for item, where in zip(items, wheres):
        reason = check(item)
        if reason:
            problems.append(Problem(where, reason))
        else:
            examples.append(Example(item, -1, where))
    return Dataset(str(path), modality, (), tuple(examples), tuple(problems))


def _sounds_in(path: Path) -> list[Path]:
    """Clips a front end reads (by suffix): the file itself, or the files directly in the folder."""
    from zoo.frontend import suffixes

    known = suffixes("audio")
    if not known or not path.exists():
        return []
    if path.is_file():
        return [path] if path.suffix.lower() in known else []
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in known)


def _source(example: Any, modality: str) -> str:
    item = example.item
    if isinstance(item, (str, Path)) and not (modality == "text" and isinstance(item, str)):
        return str(Path(item).resolve())
    if isinstance(item, str):
        return item
    return example.where  # an array: where it came from, e.g. digits[12]


def _content(example: Any, modality: str) -> str:
    from zoo.data.dataset import content_digest  # the digest Dataset.fingerprint() is made of

    digest = content_digest(example, modality)
    return digest[:1].decode() + digest[1:].hex()


def _id(source: str) -> str:
    import hashlib

    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def normalize(vectors: Any) -> Any:
    """Rows scaled to unit L2 norm (float32); an all-zero row stays zero."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


# --------------------------------------------------------------------------- embedding

def embed_dataset(
    model: str,
    data: str | Path,
    *,
    db: str | Path,
    table: str | None = None,
    skip_bad: bool = False,
    index: bool | None = None,
    batch_size: int = 64,
    device: str | None = None,
    workers: int | None = None,
    engine: str = "auto",
    progress: bool = False,
    registry_files: Sequence[str | Path] = (),
    front_end: dict[str, Any] | None = None,
) -> EmbedReport:
    """Embed ``data`` with ``model`` into table ``table`` (default: named after the model) of the
    LanceDB database ``db`` (created when missing), embedding only what the table lacks.

    ``index``: None builds the ANN index once the table reaches ``INDEX_THRESHOLD`` rows, True
    builds it now, False never. ``engine``: the frozen pass's engine (:func:`zoo.frozen.frozen_pass`).
    Raises :class:`zoo.errors.ZooError` when the table was made by another model (or other weights
    of this one).

    Under torch.distributed (torchrun, or ``zoo embed --nproc N``) rank 0 owns the database: it
    plans (what is new, what changed) and writes; every rank embeds its share of the new items
    and rank 0 gathers them, so the table is the one a single process makes. Every rank returns
    rank 0's report.

    Sounds (a folder of clips, with or without class folders) are embedded by an image backbone
    through the log-mel front end; ``front_end``: its settings (``{"clip_seconds": 2}``), recorded
    in the table with every other parameter, so that a query clip is read the same way.
    """
    from zoo.distributed import broadcast, init_world

    from zoo.devices import torch_device

    here = init_world(torch_device(device))
    if not here.main:
        return _help_embed(model, data, skip_bad=skip_bad, batch_size=batch_size, device=device, workers=workers,
                           engine=engine, registry_files=registry_files, front_end=front_end)
    report = _embed_dataset(model, data, db=db, table=table, skip_bad=skip_bad, index=index, batch_size=batch_size,
                            device=device, workers=workers, engine=engine, progress=progress,
                            registry_files=registry_files, front_end=front_end)
    return broadcast(report) if here.distributed else report


def _help_embed(model: str, data: str | Path, *, skip_bad: bool, batch_size: int, device: str | None,
                workers: int | None, engine: str, registry_files: Sequence[str | Path],
                front_end: dict[str, Any] | None) -> EmbedReport:
    """A rank other than 0 in a distributed embed: the same model and data, rank 0's job (which
    examples to embed), its share of them; then rank 0's report."""
    from zoo.distributed import broadcast
    from zoo.embed.embedder import resolve_embedder

    embedder = resolve_embedder(model, registry_files)
    dataset = read_items(data, embedder.card.modality, skip_bad=skip_bad)
    embedder = embedder.reading(dataset.modality, front_end)
    job = broadcast(None)
    if job is not None:
        _compute(job, dataset, embedder, batch_size=batch_size, device=device, workers=workers, engine=engine,
                 progress=False)
    return broadcast(None)


def _embed_dataset(model: str, data: str | Path, *, db: str | Path, table: str | None, skip_bad: bool,
                   index: bool | None, batch_size: int, device: str | None, workers: int | None, engine: str,
                   progress: bool, registry_files: Sequence[str | Path],
                   front_end: dict[str, Any] | None = None) -> EmbedReport:
    from zoo.__about__ import __version__
    from zoo.distributed import broadcast, world
    from zoo.embed.store import TableInfo, VectorStore, check_table_name, table_name_for
    from zoo.fetched import now_utc
    from zoo.pulling import resolve_card

    started = time.perf_counter()
    from zoo.embed.embedder import is_run_folder, resolve_embedder

    is_run = is_run_folder(Path(str(model)))
    if not is_run:
        card = resolve_card(model, registry_files)
    name = check_table_name(table or table_name_for(Path(model).name if is_run else card.name))
    store = VectorStore(db, create=True)
    with store.lock(name):
        existing = store.table(name) if store.has(name) else None
        if existing is not None and not is_run and existing.info.model != card.name:
            _check_same_model(existing, card.name, None)  # before any pull or read: fails fast
        embedder = resolve_embedder(model, registry_files, quiet=not progress)
        dataset = read_items(data, embedder.card.modality, skip_bad=skip_bad)
        embedder = embedder.reading(dataset.modality, front_end)  # sounds: through the front end
        card, fetched = embedder.card, embedder.fetched
        from zoo.frontend import declared

        info = TableInfo(model=embedder.name, revision=fetched.resolved or fetched.revision,
                         embedder=embedder.identity, modality=dataset.modality, dim=embedder.dim,
                         zoo_version=__version__, created_at=now_utc(),
                         weights=fetched.weights_record()["sha256"], front_end=declared(card),
                         towers=embedder.towers())
        if existing is not None:
            _check_same_model(existing, embedder.name, info, fetched)
        created = existing is None
        target = store.create(name, info) if created else existing
        try:
            plan = _plan(dataset, target)
            job = _job(plan, dataset, embedder) if plan.ids and plan.to_embed else None
            if world().distributed:
                broadcast(job)  # the other ranks embed their share of it (see _help_embed)
            vectors, cache_note, engine_used = _vectors(plan, job, dataset, target, embedder, batch_size=batch_size,
                                                        device=device, workers=workers, engine=engine,
                                                        progress=progress)
            if plan.replace_ids:  # changed rows replaced and new ones added in one commit
                target.upsert(plan.ids, plan.sources, plan.labels, plan.contents, vectors)
            else:
                target.add(plan.ids, plan.sources, plan.labels, plan.contents, vectors)
        except BaseException:
            if created:  # a table this call made stays only with its rows in it (a full disk, a bad input)
                store.drop(name)
            raise
        stale = sorted(set(plan.replace_ids) - set(plan.ids))  # a replaced row under an id of another scheme
        if stale:
            target.delete_ids(stale)
        index_note = target.maintain_index(index)
        rows = len(target)
    return EmbedReport(
        db=str(store.path), table=name, model=embedder.name, revision=info.revision, items=len(dataset),
        embedded=len(plan.to_embed), reused=len(plan.ids) - len(plan.to_embed),
        replaced=len(plan.replace_ids), unchanged=plan.unchanged, skipped_deleted=plan.skipped_deleted,
        duplicates=plan.duplicates, skipped_bad=tuple(str(p) for p in dataset.problems), rows=rows,
        index=index_note, feature_cache=cache_note, engine=engine_used, seconds=time.perf_counter() - started,
        created=created)


def _check_same_model(table: Any, model: str, info: Any, fetched: Any = None) -> None:
    """Refuse vectors of another model, or of other weights (``fetched``: the files pulled now,
    compared with the sha256 the table recorded) or preprocessing of this one."""
    from zoo.errors import ZooError

    have = table.info
    if have.model != model:
        raise ZooError(
            f"table {table.name!r} in {table.store.path} holds embeddings from {have.describe()}, not from "
            f"{model!r}: vectors of two models cannot be compared. Leave out --table (each model gets "
            f"its own table) or name another one")
    if fetched is not None:
        from zoo.pulling import check_same_weights

        check_same_weights(have.weights, fetched, f"table {table.name!r} in {table.store.path}")
    if info is not None and (have.embedder != info.embedder or have.dim != info.dim):
        raise ZooError(
            f"table {table.name!r} in {table.store.path} was made by {have.describe()}, but {info.model!r} "
            f"now has other weights, cut point or preprocessing (revision {info.revision}), so its vectors "
            f"would not match the stored ones. Embed into a new --table")


@dataclass
class _Plan:
    """Which examples become rows, and how their vectors are obtained."""

    ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)
    replace_ids: list[str] = field(default_factory=list)
    to_embed: dict[str, int] = field(default_factory=dict)  # content -> first example with it
    stored: set[str] = field(default_factory=set)  # contents whose vectors the table has
    unchanged: int = 0
    skipped_deleted: int = 0
    duplicates: int = 0
    table_was_empty: bool = True


def _plan(dataset: Any, table: Any) -> _Plan:
    keys = table.keys()
    by_source = {s: (i, l, c) for i, s, l, c in zip(keys["id"], keys["source"], keys["label"], keys["content"])}
    plan = _Plan(stored=set(keys["content"]), table_was_empty=not keys["id"])
    deleted = table.deleted_contents()
    seen: set[str] = set()
    modality = dataset.modality
    for n, example in enumerate(dataset.examples):
        source = _source(example, modality)
        if source in seen:
            plan.duplicates += 1
            continue
        seen.add(source)
        content = _content(example, modality)
        if content in deleted:
            plan.skipped_deleted += 1
            continue
        label = dataset.classes[example.label] if example.label >= 0 else None
        old = by_source.get(source)
        if old is not None:
            old_id, old_label, old_content = old
            if old_content == content and old_label == label:
                plan.unchanged += 1
                continue
            plan.replace_ids.append(old_id)
        if content not in plan.stored and content not in plan.to_embed:
            plan.to_embed[content] = n
        plan.ids.append(_id(source))
        plan.sources.append(source)
        plan.labels.append(label)
        plan.contents.append(content)
    return plan


def _job(plan: _Plan, dataset: Any, embedder: Any) -> dict[str, Any]:
    """What must be embedded, as plain data every rank can act on: the examples of the new
    contents, and whether that is the whole dataset (then zoo finetune's feature cache serves)."""
    return {"examples": [n for _, n in plan.to_embed.items()],
            "whole": _whole(plan, dataset) and embedder.uses_feature_cache}


def _vectors(plan: _Plan, job: dict[str, Any] | None, dataset: Any, table: Any, embedder: Any, *, batch_size: int,
             device: str | None, workers: int | None, engine: str, progress: bool
             ) -> tuple[Any, str | None, dict[str, Any] | None]:
    """The (rows, dim) normalised vectors of the plan's rows: stored ones reused, the rest computed
    (``job``, :func:`_compute`), with the cache note and the record of the frozen pass that
    computed them."""
    import numpy as np

    if not plan.ids:
        return np.zeros((0, embedder.dim), np.float32), None, None
    computed: dict[str, Any] = {}
    cache_note, used = None, None
    if job is not None:
        matrix, cache_note, used = _compute(job, dataset, embedder, batch_size=batch_size, device=device,
                                            workers=workers, engine=engine, progress=progress)
        computed = dict(zip(plan.to_embed, normalize(matrix.numpy())))
    reused = table.vectors_for(c for c in plan.contents if c not in computed)  # stored: already normalised
    return np.stack([computed[c] if c in computed else reused[c] for c in plan.contents]), cache_note, used


def _compute(job: dict[str, Any], dataset: Any, embedder: Any, *, batch_size: int, device: str | None,
             workers: int | None, engine: str, progress: bool) -> tuple[Any, str | None, dict[str, Any] | None]:
    """The embeddings of the job's examples (a tensor, in its order), the cache note and the engine.

    When the table is empty and every example is needed, the whole dataset goes through zoo
    finetune's feature cache (a hit when finetune already embedded this data with this model; else
    it is filled, so a later finetune starts from it); otherwise only the new contents are embedded.
    A run's backbone (cut where it chose, trained where it trained) is not the card's: its vectors
    are computed, through the compiled engine only when its weights are still the pulled ones.
    Under torch.distributed every rank calls this and embeds its share."""
    from zoo.devices import torch_device
    from zoo.distributed import gather_rows, shard, world
    from zoo.embed.store import forking_loaders
    from zoo.frozen.choice import LazyPass
    from zoo.frozen.features import cached_embeddings

    chosen = torch_device(device)
    here = world()
    if here.distributed and chosen.type == "cuda" and chosen.index is None:
        import torch

        chosen = torch.device("cuda", here.local_rank)
    backbone = embedder.backbone(device=chosen)
    examples = job["examples"]
    items = [dataset.examples[n].item for n in examples]
    fetched = embedder.engine_fetched()
    frozen = LazyPass(backbone, fetched, engine=engine if fetched is not None else "torch", device=chosen,
                      workers=workers, check=items)
    bar = _bar(len(dataset) if job["whole"] else len(items), progress)
    cache_note, used = None, None
    try:
        with forking_loaders():
            if job["whole"]:
                matrix, record = cached_embeddings(embedder.card, fetched, dataset, frozen, batch_size=batch_size,
                                                   progress=bar)
                cache_note = "hit" if record["hit"] else "stored"
                used = record.get("engine")
                matrix = matrix[examples]
            else:
                part = shard(len(items), here)
                mine = items[part.start:part.stop]
                matrix = frozen().embed(mine, batch_size=batch_size, progress=bar) if mine else None
                if matrix is None:
                    import torch

                    matrix = torch.zeros(0, embedder.dim)
                matrix = gather_rows(matrix.float().cpu(), len(items))
                used = frozen.made.record() if frozen.made is not None else None
    finally:
        if bar is not None:
            bar.close()
    return matrix, cache_note, used


def _whole(plan: _Plan, dataset: Any) -> bool:
    return plan.table_was_empty and len(plan.to_embed) == len(dataset)


def _bar(total: int, progress: bool) -> Any:
    if not progress or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="item", desc="embedding", leave=False)


# --------------------------------------------------------------------------- deleting

def delete_items(db: str | Path, targets: Sequence[str], *, table: str | None = None) -> DeleteReport:
    """Remove items by id, by file path (a folder removes everything under it) or by text, from
    ``table`` or from every table of ``db``.

    Rows holding the same content as a matched row (copies) go too, the content hashes are
    remembered so that a later ``embed_dataset`` skips them, and the table files are rewritten
    and old versions dropped (:meth:`Table.purge`), so the data leaves the disk.
    """
    from zoo.embed.store import VectorStore

    if not targets:
        raise InputError("give the ids, paths or texts to delete")
    store = VectorStore(db)
    tables = [store.table(table)] if table is not None else [store.table(n) for n in store.tables()]
    removed: dict[str, int] = {}
    found: set[str] = set()
    for target_table in tables:
        with store.lock(target_table.name):
            keys = target_table.keys()
            matched_contents: set[str] = set()
            for target in targets:
                hits = _matching(target, keys)
                if hits:
                    found.add(target)
                    matched_contents.update(keys["content"][i] for i in hits)
            doomed = [i for i, c in zip(keys["id"], keys["content"]) if c in matched_contents]
            if doomed:
                target_table.delete_ids(doomed)
                target_table.remember_deleted(matched_contents)
                target_table.purge()
            removed[target_table.name] = len(doomed)
    return DeleteReport(str(store.path), removed, tuple(t for t in targets if t not in found))


def _matching(target: str, keys: dict[str, list[Any]]) -> list[int]:
    """Rows a target names: an id, a file or folder path (as given, or resolved), or a text."""
    names = {target}
    path = Path(target).expanduser()
    folder = None
    try:
        names.add(str(path.resolve()))
        names.add(os.path.abspath(path))
        if path.is_dir():
            folder = str(path.resolve()).rstrip(os.sep) + os.sep
    except (OSError, ValueError):
        pass  # a text that is not a valid path
    return [n for n, (id_, source) in enumerate(zip(keys["id"], keys["source"]))
            if id_ == target or source in names or (folder is not None and source.startswith(folder))]
