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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from zoo import Fetched, FetchedFile, Field, IntegrityError, OfflineError, PullError
from zoo_hf.hub import check_repo_id, describe_patterns, progress_class, translate

if TYPE_CHECKING:  # pragma: no cover
    from zoo import Cache, ModelCard

__all__ = ["HubSource"]

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
                local_files_only=offline is not None, tqdm_class=progress_class(cache.quiet),
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
            raise OfflineError(f"{where}: no file matching {describe_patterns(allow, ignore)} is in the Hugging Face "
                               f"cache and offline mode is on ({offline}). Run `zoo pull {card.name}` with "
                               "network access first, or turn offline mode off")
        if not files:
            raise PullError(
                f"{where}: no file in the repository matches {describe_patterns(allow, ignore)}. "
                f"Check the card's source.allow / source.ignore against the files of {repo!r} at {revision!r}"
            )
        return Fetched(model=card.name, source=self.name, locator=repo, revision=revision, root=root,
                       files=files, resolved=root.name)


def _patterns(card: ModelCard, key: str) -> list[str] | None:
    value = card.source.get(key)
    return list(value) if value else None


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
