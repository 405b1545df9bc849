"""The `hf` source: a model repository on the Hugging Face Hub, kept in the standard HF cache.

Files are downloaded by huggingface_hub's own client (``snapshot_download``) so that they land in
the cache that transformers and timm share (``HF_HOME`` / ``HF_HUB_CACHE``), and the client keeps
doing what users configure it with: ``HF_TOKEN`` for gated or private repos, ``HF_ENDPOINT`` for
mirrors. zoo does not copy the files: the pull record points into the HF snapshot folder.

huggingface_hub is imported inside the functions that use it, so ``zoo list`` stays fast.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import Fetched, FetchedFile, Field, IntegrityError, OfflineError, PullError, ZooError

if TYPE_CHECKING:  # pragma: no cover
    from zoo import Cache, ModelCard

__all__ = ["HubSource", "translate"]

DEFAULT_REVISION = "main"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")


class HubSource:
    """A model repository on the Hugging Face Hub, kept in the standard HF cache."""

    name = "hf"
    fields: Mapping[str, Field] = {
        "repo": Field(str, required=True, help="repository id, e.g. google-bert/bert-base-uncased"),
        "revision": Field(str, help="branch, tag or commit; 'main' when omitted, resolved at pull time"),
        "allow": Field(list[str], help="glob patterns of the files to pull"),
        "ignore": Field(list[str], help="glob patterns of files to skip"),
    }

    def revision(self, card: ModelCard) -> str:
        """The revision as the card writes it (a branch stays a branch: the commit goes in ``resolved``)."""
        return str(card.source.get("revision") or DEFAULT_REVISION)

    def locator(self, card: ModelCard) -> str:
        """The repository id, checked by the Hub's rules before anything is written for it."""
        from zoo import shown_name
        from zoo_hf.finder import check_repo_id

        repo = str(card.source.get("repo"))
        check_repo_id(repo, f"model {card.name!r}: source.repo {shown_name(repo)}")
        return repo

    def fetch(self, card: ModelCard, cache: Cache) -> Fetched:
        """Download the card's files into the HF cache (or find them there offline) and record them.

        Offline (``cache.offline``, or huggingface_hub's own ``HF_HUB_OFFLINE``) calls the client
        with ``local_files_only=True``: it then makes no request at all.
        """
        from huggingface_hub import constants, snapshot_download

        repo, revision = self.locator(card), self.revision(card)
        allow, ignore = _patterns(card, "allow"), _patterns(card, "ignore")
        offline = ("ZOO_OFFLINE=1 / --offline" if cache.offline
                   else "HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else None)
        where = f"model {card.name!r} (Hugging Face repo {repo!r}, revision {revision!r})"
        try:
            folder = snapshot_download(
                repo, revision=revision, allow_patterns=allow, ignore_patterns=ignore,
                local_files_only=offline is not None, tqdm_class=_progress_class(cache.quiet),
            )
        except Exception as exc:
            error = translate(exc, where, name=card.name, repo=repo, revision=revision, offline=offline,
                              allow=allow, ignore=ignore)
            if error is None:
                raise  # not a user error: a bug keeps its traceback
            raise error from exc
        root = Path(folder)
        files = _record_files(root, allow, ignore, where)
        if not files and offline:
            raise OfflineError(f"{where}: no file matching {_describe(allow, ignore)} is in the Hugging Face "
                               f"cache and offline mode is on ({offline}). Run `zoo pull {card.name}` with "
                               "network access first, or turn offline mode off")
        if not files:
            raise PullError(
                f"{where}: no file in the repository matches {_describe(allow, ignore)}. "
                f"Check the card's source.allow / source.ignore against the files of {repo!r} at {revision!r}"
            )
        return Fetched(model=card.name, source=self.name, locator=repo, revision=revision, root=root,
                       files=files, resolved=root.name)


def _patterns(card: ModelCard, key: str) -> list[str] | None:
    value = card.source.get(key)
    return list(value) if value else None


def _describe(allow: Sequence[str] | None, ignore: Sequence[str] | None) -> str:
    parts = []
    if allow:
        parts.append(f"allow = {list(allow)}")
    if ignore:
        parts.append(f"ignore = {list(ignore)}")
    return " and ".join(parts) or "no pattern"


def _progress_class(quiet: bool) -> type[Any]:
    """huggingface_hub's tqdm, silenced when zoo is quiet or stderr is not a terminal.

    Passed per call rather than through ``disable_progress_bars()``, which would change the
    client's global state for everything else in the process (transformers included)."""
    from huggingface_hub.utils import tqdm

    if not quiet and sys.stderr is not None and sys.stderr.isatty():
        return tqdm

    class Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def _record_files(root: Path, allow: list[str] | None, ignore: list[str] | None,
                  where: str) -> tuple[FetchedFile, ...]:
    """Every file of the snapshot that the card's patterns select, hashed.

    The snapshot folder is shared: transformers or another card may have put other files of the
    same commit there, so the patterns (applied the way huggingface_hub applies them) choose.
    """
    from huggingface_hub.utils import filter_repo_objects

    if not root.is_dir():
        return ()
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    selected = filter_repo_objects(names, allow_patterns=allow, ignore_patterns=ignore)
    return tuple(_hash(root, name, where) for name in selected)


def _hash(root: Path, name: str, where: str) -> FetchedFile:
    """Hash one snapshot file and check it against the Hub's ETag, which names its blob.

    In the HF cache a snapshot file links to ``blobs/<etag>``: a 64-hex ETag is the file's sha256
    (LFS files), a 40-hex one its git blob sha1. A file whose bytes disagree was corrupted on disk.
    """
    path = root / name
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    stat = path.stat()
    sha1.update(b"blob %d\0" % stat.st_size)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    etag = path.resolve().name if path.is_symlink() else ""
    digest = sha256.hexdigest()
    expected, got = ((etag, digest) if _HEX64.fullmatch(etag)
                     else (etag, sha1.hexdigest()) if _HEX40.fullmatch(etag) else (None, None))
    if expected is not None and expected != got:
        raise IntegrityError(
            f"{where}, file {name!r}: its bytes do not match the Hub's ETag {expected} (got {got}); the "
            f"HF cache copy at {path.resolve()} is corrupted. Delete that file and pull again"
        )
    return FetchedFile(name=name, path=path, sha256=digest, size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def translate(exc: Exception, where: str, *, name: str, repo: str, revision: str, offline: str | None,
              allow: list[str] | None = None, ignore: list[str] | None = None,
              repo_hint: str = "Check the card's source.repo",
              revision_hint: str = "Fix the card's source.revision") -> ZooError | None:
    """A zoo error saying what to do, for the huggingface_hub errors a user can cause; None for the rest.

    ``name`` is what `zoo pull` takes, ``offline`` names the switch that turned offline mode on (None
    when online); the hints say what to fix when the repo or the revision does not exist. The source
    and the finder (for ``hf:ORG/NAME``) share it."""
    from huggingface_hub import constants
    from huggingface_hub import errors as hf

    if isinstance(exc, ZooError):
        return None
    if offline and isinstance(exc, hf.LocalEntryNotFoundError):
        return OfflineError(
            f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
            + (" or only partly" if isinstance(exc, getattr(hf, "IncompleteSnapshotError", ())) else "")
            + f" and offline mode is on ({offline}). Run `zoo pull {name}` with network access first, "
            "or turn offline mode off"
        )
    if isinstance(exc, hf.GatedRepoError):
        return PullError(
            f"{where}: the repository is gated and your token does not grant access. Accept its terms at "
            f"{constants.ENDPOINT}/{repo} while logged in, then set HF_TOKEN to a token "
            "of that account (or run `hf auth login`) and pull again"
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return PullError(
            f"{where}: the repository does not exist on {constants.ENDPOINT}, or it is private. {repo_hint}; "
            "for a private or gated repository set HF_TOKEN to a token that can read it"
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return PullError(f"{where}: the repository has no branch, tag or commit {revision!r}. {revision_hint}")
    if isinstance(exc, hf.EntryNotFoundError) and not isinstance(exc, hf.LocalEntryNotFoundError):
        return PullError(
            f"{where}: a file that matches {_describe(allow, ignore)} is listed but could not be downloaded "
            f"({_first_line(exc)}). Pull again later, or narrow the card's source.allow"
        )
    if _is_connection_error(exc):
        return PullError(
            f"{where}: could not reach the Hugging Face Hub at {constants.ENDPOINT} ({_root_cause(exc)}). "
            "Check your network connection and HF_ENDPOINT, or set ZOO_OFFLINE=1 (zoo --offline) to use "
            "only models already in the cache"
        )
    if isinstance(exc, (hf.HfHubHTTPError, hf.FileMetadataError, hf.LocalEntryNotFoundError)):
        return PullError(
            f"{where}: the Hub at {constants.ENDPOINT} answered with an error: {_first_line(exc)}. "
            "Pull again later; if HF_ENDPOINT is set, check that it points to a Hub-compatible server"
        )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP stacks' "could not talk to the server" errors, for whichever stack this client uses."""
    from importlib import import_module

    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        try:
            loaded = import_module(module)
        except ImportError:
            continue
        found.extend(getattr(loaded, n) for n in names if isinstance(getattr(loaded, n, None), type))
    return tuple(found)


def _is_connection_error(exc: BaseException) -> bool:
    errors = _transport_errors()
    return any(isinstance(e, errors) for e in _chain(exc))


def _root_cause(exc: BaseException) -> str:
    last = _chain(exc)[-1]
    return f"{type(last).__name__}: {_first_line(last)}"


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__
