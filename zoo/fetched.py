"""What a pull produces: a small record of paths and hashes (plain data, stdlib only).

A source returns a :class:`Fetched`; the cache writes it as the model's pull record (JSON) and
later loads verify the files against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["Fetched", "FetchedFile", "now_utc"]


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class FetchedFile:
    """One verified file: its name relative to the model's root, where it is, its hash and size."""

    name: str  # '/'-separated, relative to Fetched.root
    path: Path
    sha256: str
    size: int
    mtime_ns: int | None = None  # when hashed; a later load re-hashes only if size or mtime changed

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256, "size": self.size,
                "mtime_ns": self.mtime_ns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FetchedFile:
        return cls(name=data["name"], path=Path(data["path"]), sha256=data["sha256"], size=int(data["size"]),
                   mtime_ns=data.get("mtime_ns"))


@dataclass(frozen=True)
class Fetched:
    """A model's files as a source delivered them (the pull record).

    ``revision`` names the cache folder (e.g. torchvision's weight member, an HF branch as the card
    spells it); ``resolved`` is what it pointed to at pull time (an HF commit), when that differs.
    ``root`` is the folder holding the files: zoo's cache folder, an HF snapshot folder, or the
    installed package's folder.
    """

    model: str
    source: str  # the source type, e.g. "torchvision"
    locator: str  # URL, repo id, path or package resource the files came from
    revision: str
    root: Path
    files: tuple[FetchedFile, ...]
    resolved: str | None = None
    pulled_at: str = field(default_factory=now_utc)

    def path(self, name: str) -> Path:
        """The path of one file by its name; a KeyError names the files that exist."""
        for item in self.files:
            if item.name == name:
                return item.path
        raise KeyError(f"{self.model}: no file {name!r} was pulled (have: {', '.join(f.name for f in self.files)})")

    def find(self, *suffixes: str) -> list[FetchedFile]:
        """Files whose names end with any of the suffixes, in record order."""
        return [f for f in self.files if f.name.endswith(suffixes)]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def weights_record(self) -> dict[str, Any]:
        """Which weights these are, as runs, few-shot folders and exports record them (and
        :func:`zoo.pulling.check_same_weights` compares): source, resolved revision, sha256 per file."""
        return {"source": self.locator, "revision": self.resolved or self.revision,
                "sha256": {f.name: f.sha256 for f in self.files}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "source": self.source, "locator": self.locator,
            "revision": self.revision, "resolved": self.resolved, "root": str(self.root),
            "pulled_at": self.pulled_at, "files": [f.to_dict() for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fetched:
        return cls(
            model=data["model"], source=data["source"], locator=data["locator"],
            revision=data["revision"], resolved=data.get("resolved"), root=Path(data["root"]),
            pulled_at=data["pulled_at"], files=tuple(FetchedFile.from_dict(f) for f in data["files"]),
        )
