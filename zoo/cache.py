"""zoo's cache on disk: folder layout, locks, pull records, checks and cleaning.

Layout under the root (``$ZOO_HOME``), readable by a person::

    models/<model>/<revision>/            '/' in a name becomes '--' (google-bert--bert-base-uncased)
        pull.json                         the pull record: which files, their sha256 and size
        <files>                           only ever at their final names once verified

The pull record is the trust anchor: when a card pins no hash, the hash seen at the first pull is
recorded and every later check compares against it (trust on first use). Sources whose files live
elsewhere (an installed package, a local folder, the Hugging Face cache) still keep their record
here; removing a model removes zoo's folder only, never their files.

Stdlib and filelock only (no torch): ``zoo pull`` and ``zoo cache`` stay fast.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import settings
from zoo.atomic import atomic_write_json, ensure_folder
from zoo.errors import CACHE_FIX, CacheError, storage_error
from zoo.fetched import Fetched, FetchedFile
from zoo.redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    import filelock

__all__ = ["Cache", "CacheEntry", "VerifyReport", "RECORD_NAME", "RECORD_FORMAT"]

RECORD_NAME = "pull.json"
RECORD_FORMAT = 1  # bump when the record's shape changes; unknown formats read as absent


@dataclass(frozen=True)
class VerifyReport:
    """The result of re-hashing one cached model revision against its pull record."""

    model: str
    revision: str
    ok: bool
    checked: int
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": list(self.problems)}


@dataclass(frozen=True)
class CacheEntry:
    """One cached model revision, as ``zoo cache list`` shows it (sizes from the pull record)."""

    model: str
    revision: str
    source: str
    locator: str
    files: int
    size: int
    pulled_at: str
    folder: Path  # zoo's folder holding the record (and the files, for url/torchvision sources)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "folder": str(self.folder)}


def _inside_parts(name: str) -> list[str] | None:
    """The '/'-separated parts of a relative name, or None when it could leave its folder."""
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts) or "\\" in name or "\0" in name:
        return None
    return parts


def safe_name(name: str, what: str = "name") -> str:
    """A model or revision name as one folder name: '/' becomes '--'; escapes are refused."""
    parts = _inside_parts(name)
    if parts is None:
        raise CacheError(
            f"{what} {name!r} cannot name a cache folder: it is empty, absolute, or has '.', '..' or "
            "empty parts that would leave zoo's cache. Use a plain name such as 'org/model'"
        )
    return "--".join(parts)


class Cache:
    """zoo's cache folder. ``root`` defaults to ``$ZOO_HOME``, ``offline`` to ``$ZOO_OFFLINE``."""

    def __init__(self, root: Path | None = None, *, offline: bool | None = None, quiet: bool = False,
                 force: bool = False) -> None:
        self.root = Path(root) if root is not None else settings.zoo_home()
        self.offline = settings.offline() if offline is None else offline
        self.quiet = quiet
        self.force = force  # downloads replace files even when their hash matches (zoo pull --force)

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r}, offline={self.offline})"

    # layout

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model_dir(self, model: str, revision: str) -> Path:
        """``root/models/<model>/<revision>``, with '/' spelled '--' (nothing is created)."""
        return self.models_dir / safe_name(model, "model") / safe_name(revision, "revision")

    def file_path(self, model: str, revision: str, name: str) -> Path:
        """Where a source puts one file of a model (``name`` is '/'-separated, inside the folder)."""
        parts = _inside_parts(name)
        if parts is None:
            raise CacheError(f"model {model!r}: file name {name!r} would leave the model's cache folder; "
                             "fix the card's files (a relative name such as 'weights/model.pt')")
        return self.model_dir(model, revision).joinpath(*parts)

    def lock(self, path: Path) -> filelock.FileLock:
        """An inter-process lock on ``path`` (the file ``path + '.lock'``), its folders created."""
        import filelock

        lock_path = Path(str(path) + ".lock")
        ensure_folder(lock_path.parent, CACHE_FIX)
        try:
            with open(lock_path, "a"):  # surface an unwritable cache here, not inside `with lock:`
                pass
        except OSError as exc:
            raise storage_error(exc, lock_path, CACHE_FIX) from None
        return filelock.FileLock(str(lock_path))

    # transfer

    def download(self, url: str, dest: Path, *, sha256: str | None = None, sha256_prefix: str | None = None,
                 size: int | None = None, name: str | None = None) -> FetchedFile:
        """Download one file into the cache, verified (:func:`zoo.download.download`), honouring
        this cache's offline and quiet settings."""
        from zoo.download import download

        return download(url, dest, sha256=sha256, sha256_prefix=sha256_prefix, size=size, name=name,
                        offline=self.offline, quiet=self.quiet, reuse=not self.force)

    # pull records

    def record_path(self, model: str, revision: str) -> Path:
        return self.model_dir(model, revision) / RECORD_NAME

    def read_record(self, model: str, revision: str) -> Fetched | None:
        """The pull record of a model revision, or None when absent or unreadable (never raises
        for a damaged record: the model is then simply pulled again)."""
        record = _load_record(self.record_path(model, revision))
        if record is None or record.model != model or record.revision != revision:
            return None  # another name that maps to the same folder ('a/b' and 'a--b')
        return record

    def write_record(self, fetched: Fetched) -> Path:
        """Write the pull record atomically (temp, fsync, rename): readers see old or new, never half.
        Its locator is written redacted: no password or token of a URL is kept on disk."""
        path = self.record_path(fetched.model, fetched.revision)
        record = {"format": RECORD_FORMAT, **fetched.to_dict(), "locator": redact(fetched.locator)}
        atomic_write_json(path, record, fix=CACHE_FIX)
        return path

    def records(self, model: str | None = None) -> list[Fetched]:
        """Every readable pull record (or one model's), sorted by model then revision."""
        if model is None:
            paths = self.models_dir.glob(f"*/*/{RECORD_NAME}")
        else:
            paths = (self.models_dir / safe_name(model, "model")).glob(f"*/{RECORD_NAME}")
        found = [r for r in map(_load_record, paths) if r is not None and (model is None or r.model == model)]
        return sorted(found, key=lambda r: (r.model, r.revision))

    # checks

    def check(self, fetched: Fetched) -> list[str]:
        """The check before a load: every file is there with its recorded size, and its full sha256
        matches the record, computed once per file per process (a flipped byte under an unchanged
        size and mtime, bit rot or ``cp -p``, is caught). Files over :data:`FULL_HASH_LIMIT` are
        re-hashed only when their size or mtime changed; ``zoo cache verify`` hashes everything.
        Returns problems (empty: intact); each says ``missing`` or what differs."""
        problems = []
        for item in fetched.files:
            try:
                stat = item.path.stat()
            except OSError:
                problems.append(f"{item.path}: missing (model {fetched.model!r}, file {item.name!r})")
                continue
            if stat.st_size != item.size:
                problems.append(f"{item.path}: {stat.st_size} bytes, the pull record says {item.size}")
                continue
            stamp = (str(item.path), stat.st_size, stat.st_mtime_ns, stat.st_ino, item.sha256)
            if stamp in _VERIFIED:
                continue
            if stat.st_size > FULL_HASH_LIMIT and item.mtime_ns is not None and stat.st_mtime_ns == item.mtime_ns:
                continue
            found = _hash_problem(item)
            problems.extend(found)
            if not found:
                _VERIFIED.add(stamp)
        return problems

    def verify(self, model: str | None = None) -> list[VerifyReport]:
        """Re-hash every file of every pull record (or of one model's) against the record."""
        records = self.records(model)
        if model is not None and not records:
            raise CacheError(f"nothing is cached for model {model!r} in {self.root}. "
                             "Run `zoo cache list` to see what is, or `zoo pull` it first")
        reports = []
        for record in records:
            problems = []
            for item in record.files:
                problems.extend(_hash_problem(item))
            reports.append(VerifyReport(record.model, record.revision, not problems, len(record.files),
                                        tuple(problems)))
        return reports

    # listing and cleaning

    def entries(self) -> list[CacheEntry]:
        """Every cached model revision, sorted by model then revision."""
        return [
            CacheEntry(model=r.model, revision=r.revision, source=r.source, locator=r.locator,
                       files=len(r.files), size=r.size, pulled_at=r.pulled_at,
                       folder=self.model_dir(r.model, r.revision))
            for r in self.records()
        ]

    def remove(self, model: str) -> list[Path]:
        """Delete zoo's folders of a model (every revision) and return them. Files that live
        outside the cache (package, local and Hugging Face sources) are never touched."""
        folder = self.models_dir / safe_name(model, "model")
        if not folder.is_dir():
            raise CacheError(f"nothing is cached for model {model!r} in {self.root}. "
                             "Run `zoo cache list` to see what is")
        removed = sorted(p for p in folder.iterdir() if p.is_dir())
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise CacheError(f"cannot remove {folder}: {exc.strerror or exc}. "
                             "Check its permissions, or delete it by hand") from None
        return removed


#: Files up to this size are fully re-hashed before their first load in a process (sha256 ran at
#: 1.8 GB/s on the project machine: a 90 MB MiniLM in 0.05 s, 2 GiB in about 1.2 s); larger ones
#: are trusted on an unchanged size and mtime until `zoo cache verify`.
FULL_HASH_LIMIT = 2 << 30
#: (path, size, mtime, inode, sha256) of the files this process has hashed and found intact.
_VERIFIED: set[tuple[str, int, int, int, str]] = set()


def _hash_problem(item: FetchedFile) -> list[str]:
    from zoo.download import sha256_file

    try:
        digest, size = sha256_file(item.path)
    except OSError as exc:
        return [f"{item.path}: cannot be read ({exc.strerror or exc})"]
    if size != item.size:
        return [f"{item.path}: {size} bytes, the pull record says {item.size}"]
    if digest != item.sha256:
        return [f"{item.path}: sha256 is {digest}, the pull record says {item.sha256}"]
    return []


def _load_record(path: Path) -> Fetched | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            return None
        return Fetched.from_dict({**data, "locator": redact(str(data["locator"]))})  # one written before redaction
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
