"""A served model file stays the file it was loaded from, or the server says so.

The session holds the bytes it loaded, so what is answered always comes from the file whose
sha256 ``/v2/models`` lists; the danger is the other way round: someone replaces or edits the file
(a new export, a copy over it, a disk fault) and the server goes on answering from the old bytes
while everyone believes the new ones are live. So a model whose file no longer has its sha256 is
refused (503, naming the file and both hashes) until it is reloaded
(``POST /v2/repository/models/NAME/load``) or the server restarts; ``/v2/health/ready`` turns 503.

When it is checked, and why there:

- before every batch, the file's ``os.stat`` (inode, size, mtime): a few microseconds, and it
  catches every ordinary change (an export writes a new file and renames it: a new inode; a copy
  over it changes the mtime). A changed stat is followed by a full hash at once (a ``touch``
  alone is not a change);
- every ``verify_every_s`` seconds (30), a full sha256 in the background (0.05 s for a 90 MB
  file at about 1.8 GB/s): the one change a stat misses is bytes rewritten in place with the size and
  mtime put back (a deliberate edit, or a failing disk), caught within that interval;
- never a full hash per batch: for efficientnet_lite0 (13 MB) that is about 7 ms added to every
  batch, a third of a batch's time on 2 cores, to catch what the periodic check catches anyway.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from zoo.download import sha256_file
from zoo.serve.errors import RequestError, unavailable

__all__ = ["FileGuard", "Signature", "signature"]

Signature = tuple[int, int, int, int]  # device, inode, size, mtime in ns


def signature(path: Path) -> Signature | None:
    """The file's identity as ``os.stat`` sees it, or None when it is gone or unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class FileGuard:
    """The sha256 a model file had when it was loaded, and the checks that it still has it."""

    path: Path
    sha256: str
    stat: Signature | None
    changed: str | None = None  # why the file is no longer the one served (None while it is)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def hashed(cls, path: Path) -> FileGuard:
        """Hash ``path`` now; a file that changes while it is read is hashed again."""
        for _ in range(3):
            before = signature(path)
            digest, _ = sha256_file(path)
            if signature(path) == before:
                return cls(path, digest, before)
        raise unavailable(f"{path}: the file keeps changing while it is read; wait for whatever writes it to finish")

    def check_cheap(self, name: str) -> None:
        """Before a batch: a stat, and a full hash only when the stat moved. Raises when changed."""
        if self.changed is None and signature(self.path) != self.stat:
            self.check_full(name)
        self.raise_if_changed(name)

    def check_full(self, name: str) -> None:
        """The full sha256, compared with the loaded one (the periodic check)."""
        with self._lock:
            if self.changed is not None:
                return
            now = signature(self.path)
            if now is None:
                self.changed = f"its file {self.path} is gone or unreadable"
                return
            try:
                digest, _ = sha256_file(self.path)
            except OSError as exc:
                self.changed = f"its file {self.path} cannot be read ({exc.strerror or exc})"
                return
            if digest == self.sha256:
                self.stat = now  # touched or copied over with the same bytes: still the same model
            else:
                self.changed = (f"its file {self.path} changed on disk since it was loaded (sha256 {self.sha256[:12]} "
                                f"then, {digest[:12]} now)")

    def raise_if_changed(self, name: str) -> None:
        if self.changed is not None:
            raise self.error(name)

    def error(self, name: str) -> RequestError:
        return unavailable(f"model {name!r} is not served: {self.changed}; reload it "
                           f"(POST /v2/repository/models/{name}/load) or restart zoo serve", reason="model_changed")
