"""The one exception hierarchy of zoo.

Every error a user can cause is a :class:`ZooError`. Its message says what went wrong, where
(file, model, key, row) and what to do next; the CLI prints it without a traceback and exits 1.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os

__all__ = [
    "ZooError",
    "RegistryError",
    "UnknownModelError",
    "PluginError",
    "PullError",
    "OfflineError",
    "IntegrityError",
    "CacheError",
    "LoadError",
    "InputError",
    "EngineError",
    "ExportError",
    "ValidationError",
    "StorageError",
    "storage_error",
    "STORAGE_ERRNOS",
    "CACHE_FIX",
]


class ZooError(Exception):
    """Root of every user-facing zoo error."""

    exit_code = 1


class RegistryError(ZooError):
    """A registry file or entry is invalid, or two entries collide."""


class UnknownModelError(ZooError, LookupError):
    """A model name is not in the registry; the message carries close matches."""

    def __init__(self, name: str, suggestions: list[str] | tuple[str, ...] = ()) -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(
            f"no model named {name!r} in the registry.{hint} Run `zoo list` to see every model."
        )


class PluginError(ZooError):
    """A plugin misbehaved: it gave an invalid contribution or collided with another plugin."""


class PullError(ZooError):
    """Files could not be brought into the cache (network, server or source problem)."""


class OfflineError(PullError):
    """Offline mode (ZOO_OFFLINE=1 / --offline) and the files are not cached; no socket was opened."""


class IntegrityError(PullError):
    """A file's bytes do not match the expected sha256 or size; nothing was kept."""


class CacheError(ZooError):
    """The cache cannot be written (unwritable, disk full) or holds corrupted files."""


class LoadError(ZooError):
    """Pulled files could not become a backbone (unsafe pickle, key mismatch, missing package)."""


class InputError(ZooError):
    """Input data cannot be used: an unreadable image, a bad row, a wrong type; the message names it."""


class EngineError(ZooError):
    """The fast frozen-forward engine (onnxruntime) cannot be built, validated or used for a model;
    ``engine="auto"`` falls back to PyTorch, an explicit ``engine="onnxruntime"`` raises this."""


class ExportError(ZooError):
    """A model could not be exported, or its export was refused (e.g. int8 lost too much accuracy)."""


class ValidationError(ExportError):
    """onnxruntime's outputs differ from PyTorch's beyond the tolerance; nothing was written.

    ``validation`` holds the comparison (max absolute and relative differences, batches)."""

    def __init__(self, message: str, validation: object = None) -> None:
        super().__init__(message)
        self.validation = validation


class StorageError(ZooError, OSError):
    """A file or folder zoo must write (or create) cannot be: the disk is full, the place is
    read-only, or a file stands where a folder must be. Nothing partial is left at the final path.

    Also an OSError carrying the original ``errno``, so code that falls back when a cache cannot
    be written (``except OSError``) keeps working; the CLI prints its one line."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code

    def __str__(self) -> str:
        return str(self.args[0])


#: What a user can change when zoo's cache ($ZOO_HOME) cannot take a write (:func:`storage_error`'s
#: ``fix``; the cache, its downloads and pulls all say it).
CACHE_FIX = "set ZOO_HOME to a writable folder with space"

#: The errno values that mean "this place cannot hold the file" rather than a bug: each is a
#: user's environment to fix, said in one line (:func:`storage_error`).
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS,
                            errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG})


def storage_error(exc: OSError, path: object = None, fix: str = "", verb: str = "write") -> StorageError:
    """``exc`` (an OSError from writing ``path``) as one line: where, what went wrong, what to do.
    ``fix`` names the setting that moves the write elsewhere (``set ZOO_HOME to ...``, ``choose
    another --out``). An errno outside :data:`STORAGE_ERRNOS` is still said plainly, as a
    StorageError: the caller decides to raise it only for writes. ``verb``: what was being done
    (``write``; the CLI's safety net, which cannot know, says ``use``)."""
    where = path if path is not None else (exc.filename or "a file")
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        what, hint = "the disk is full", "free some space"
    elif code == errno.EFBIG:
        what, hint = "the file is larger than this process may write (file size limit)", \
            "raise the limit (ulimit -f) or free space"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        what, hint = "it is not writable (read-only or no permission)", "make it writable"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        blocking = _file_in_the_way(where)
        what = f"a file stands where a folder must be ({blocking})" if blocking else "a file stands where a folder must be"
        hint = "remove or rename that file"
    elif code == errno.EISDIR:
        what, hint = "a folder stands where a file must be", "remove or rename that folder"
    elif code == errno.ENAMETOOLONG:
        what, hint = "the name is too long for the file system", "use a shorter name or path"
    else:
        what, hint = exc.strerror or os.strerror(code or 0) or str(exc), "check the folder"
    detail = f" ({exc.strerror})" if exc.strerror and exc.strerror.lower() not in what.lower() else ""
    return StorageError(f"cannot {verb} {where}: {what}{detail}; {hint}" + (f", or {fix}" if fix else ""), code)


def _file_in_the_way(path: object) -> str | None:
    """The nearest of ``path`` and its parents that exists and is not a folder (the file that stops
    a folder being made there), or None."""
    from pathlib import Path

    try:
        current = Path(str(path))
    except TypeError:
        return None
    for candidate in (current, *current.parents):
        try:
            if candidate.exists() and not candidate.is_dir():
                return str(candidate)
            if candidate.is_dir():
                return None
        except OSError:
            return None
    return None
