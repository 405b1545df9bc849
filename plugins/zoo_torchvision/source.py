"""The `torchvision` source: a torchvision weight enum's file, downloaded by zoo itself.

No torch or torchvision import: zoo's downloader fetches the URL the card copies from the enum
(resumable, atomic, offline-aware) into zoo's cache, so a pull needs neither library.
"""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from zoo import Fetched, Field, ModelCard, PullError

if TYPE_CHECKING:  # pragma: no cover - the downloader loads when a pull needs it
    from zoo import Cache

__all__ = ["TorchvisionSource", "hash_prefix"]

# torchvision's own rule (torch.hub.HASH_REGEX): the file name's '-<hex>.' part starts the sha256.
_HASH_PREFIX = re.compile(r"-([a-f0-9]+)\.")


def hash_prefix(file_name: str) -> str | None:
    """The sha256 prefix a torchvision file name carries (``resnet50-11ad3fa6.pth`` -> ``11ad3fa6``)."""
    match = _HASH_PREFIX.search(file_name)
    return match.group(1) if match else None


class TorchvisionSource:
    """The weights file of a torchvision weight enum, downloaded by zoo into its own cache.

    The full sha256 from the card's files wins; otherwise the prefix in the file name is checked
    and the full hash is trusted on first use (kept in the pull record)."""

    name = "torchvision"
    fields = {
        "weights": Field(str, required=True, help="weight enum member, e.g. ResNet50_Weights.IMAGENET1K_V2"),
        "url": Field(str, required=True, help="the enum's download URL; its file name carries a hash prefix"),
    }

    def revision(self, card: ModelCard) -> str:
        """The enum member after the dot: ``ResNet50_Weights.IMAGENET1K_V2`` -> ``IMAGENET1K_V2``."""
        return str(card.source.get("weights")).rsplit(".", 1)[-1]

    def locator(self, card: ModelCard) -> str:
        return str(card.source.get("url"))

    def fetch(self, card: ModelCard, cache: Cache) -> Fetched:
        url = self.locator(card)
        revision = self.revision(card)
        name = posixpath.basename(unquote(urlsplit(url).path))
        if not name:
            raise PullError(f"model {card.name!r}: the torchvision URL {url} names no file; "
                            "copy the URL from the weight enum (Weights.url)")
        spec = next((f for f in card.files if f.name == name), None)
        sha256 = spec.sha256 if spec else None
        prefix = None if sha256 else (spec.sha256_prefix if spec and spec.sha256_prefix else hash_prefix(name))
        got = cache.download(url, cache.file_path(card.name, revision, name), name=name, sha256=sha256,
                             sha256_prefix=prefix, size=spec.size if spec else None)
        return Fetched(model=card.name, source=self.name, locator=url, revision=revision,
                       root=cache.model_dir(card.name, revision), files=(got,))
