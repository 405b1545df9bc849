"""Atomic writes: a temp file in the same folder, fsynced, then renamed over the target.

Readers see the old file or the new one, never half of one: a killed process, a full disk or an
error mid-write leaves the previous version in place and no temp behind. A write the place cannot
take (disk full, read-only, a file where the folder should be) raises :class:`zoo.errors.StorageError`
naming the target, which the CLI prints as one line.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from zoo.errors import STORAGE_ERRNOS, StorageError, storage_error

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_torch_save", "atomic_write_folder",
           "ensure_folder", "json_bytes"]


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any], *, mode: int | None = None,
                 fix: str = "") -> Path:
    """Call ``write(handle)`` on a temp file next to ``path``, then rename it into place.
    ``mode``: the file's permissions (mkstemp's are 0600, private), e.g. 0o644 for package data.
    ``fix``: what the user can set to write elsewhere, for the one-line error (``choose another --out``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _storage(exc, path, fix) from None
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError) and exc.errno in STORAGE_ERRNOS:
            raise storage_error(exc, path, fix) from None
        raise
    return path


def _storage(exc: OSError, path: Path, fix: str) -> OSError:
    """Creating the folder or the temp file failed: one line when the place is at fault (a full
    disk, a read-only folder, a file where the folder should be), the OSError itself otherwise."""
    if isinstance(exc, StorageError) or exc.errno not in STORAGE_ERRNOS:
        return exc
    where = path.parent if exc.errno != errno.ENAMETOOLONG else path
    return storage_error(exc, where, fix)


def ensure_folder(folder: Path, fix: str = "") -> Path:
    """``folder`` created (with its parents) or already there; a place that cannot hold it is one
    :class:`~zoo.errors.StorageError` line naming the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            raise storage_error(exc, folder, fix) from None
        raise
    if not folder.is_dir():  # mkdir(exist_ok) accepts nothing else, but a race can leave a file
        raise storage_error(OSError(errno.ENOTDIR, "Not a directory"), folder, fix)
    return folder


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None, fix: str = "") -> Path:
    return atomic_write(path, lambda handle: handle.write(data), mode=mode, fix=fix)


def json_bytes(data: Any) -> bytes:
    """``data`` as zoo writes JSON files: indented UTF-8, a newline at the end."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def atomic_write_json(path: Path, data: Any, *, fix: str = "") -> Path:
    return atomic_write_bytes(path, json_bytes(data), fix=fix)


def atomic_torch_save(path: Path, obj: Any, *, fix: str = "") -> Path:
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle), fix=fix)


def atomic_write_folder(folder: Path, files: Mapping[str, bytes], *, fix: str = "") -> Path:
    """``folder`` holding exactly ``files`` (name -> bytes), replaced as a whole: they are written
    and fsynced in a hidden temp folder beside it, which is then renamed into place (the previous
    folder moved aside first and removed after). Files that belong together (a classifier's
    prototypes and its classes) are never seen half old, half new; a full disk or an error leaves
    the previous folder, or none, and no temp behind. A place that cannot hold it is one
    :class:`~zoo.errors.StorageError` line naming the file being written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise storage_error(OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), folder, fix)
    ensure_folder(folder.parent, fix)
    try:
        temp = _new_folder(folder, ".tmp")
    except OSError as exc:
        raise _storage(exc, folder, fix) from None
    target, old = folder, None
    try:
        for name, data in files.items():
            target = folder / name
            with open(temp / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        target = folder
        if folder.exists():
            old = _new_folder(folder, ".old")
            os.replace(folder, old)  # onto the empty folder just made: renaming a folder needs no space
        os.replace(temp, folder)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if old is not None and not folder.exists():
            os.replace(old, folder)  # the previous folder back where it was
        if isinstance(exc, OSError) and not isinstance(exc, StorageError) and exc.errno in STORAGE_ERRNOS:
            raise storage_error(exc, target, fix) from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _new_folder(beside: Path, suffix: str) -> Path:
    """A new empty hidden folder next to ``beside`` (``.NAME.XXXXXXXX.SUFFIX``), with the
    permissions a plain mkdir gives (the umask's: mkdtemp's 0700 would follow the folder into place)."""
    import secrets

    while True:
        candidate = beside.parent / f".{beside.name}.{secrets.token_hex(4)}{suffix}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
