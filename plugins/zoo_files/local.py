"""The `local` source: a file or folder already on disk, used in place (nothing is copied)."""

from __future__ import annotations

from pathlib import Path

from zoo import Fetched, FetchedFile, Field, ModelCard, PullError


def files_in_place(card: ModelCard, target: Path, locator: str, revision: str) -> Fetched:
    """A pull record for files that already sit on disk: a single file, or every file of a folder."""
    from zoo import sha256_file

    if target.is_file():
        root, paths = target.parent, [target]
    elif target.is_dir():
        root = target
        paths = sorted(p for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    else:
        raise PullError(f"model {card.name!r}: {target} does not exist; fix the card's source or restore the file")
    files = []
    for path in paths:
        digest, size = sha256_file(path)
        files.append(FetchedFile(name=path.relative_to(root).as_posix(), path=path, sha256=digest, size=size,
                                 mtime_ns=path.stat().st_mtime_ns))
    return Fetched(model=card.name, source=card.source.type, locator=locator, revision=revision,
                   root=root, files=tuple(files))


class LocalSource:
    """A file or folder on disk; relative paths resolve against the registry file that declares them."""

    name = "local"
    fields = {"path": Field(str, required=True, help="file or folder, relative to the registry file")}

    def path(self, card: ModelCard) -> Path:
        path = Path(card.source.get("path")).expanduser()
        if not path.is_absolute() and card.origin.path is not None:
            path = card.origin.path.parent / path
        return path.resolve()

    def revision(self, card: ModelCard) -> str:
        return "local"

    def locator(self, card: ModelCard) -> str:
        return str(self.path(card))

    def fetch(self, card: ModelCard, cache) -> Fetched:
        return files_in_place(card, self.path(card), self.locator(card), self.revision(card))
