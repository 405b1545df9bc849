"""The one exception hierarchy of zoo.

Every error a user can cause is a :class:`ZooError`. Its message says what went wrong, where
(file, model, key, row) and what to do next; the CLI prints it without a traceback and exits 1.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

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
