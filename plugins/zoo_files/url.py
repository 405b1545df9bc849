"""The `url` source: one file from any http(s) URL, downloaded into zoo's cache and verified.

Written as a third-party plugin would be: it uses only zoo's public API, the cache and the
pull record types. zoo's own downloader does the work (resumable, atomic, offline-aware).
"""

from __future__ import annotations

import hashlib
import posixpath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from zoo import Fetched, Field, ModelCard, PullError

if TYPE_CHECKING:  # pragma: no cover - the downloader loads when a pull needs it
    from zoo import Cache

__all__ = ["UrlSource", "url_file_name"]


def url_file_name(url: str, model: str) -> str:
    """The last path segment of a URL (``.../resnet50-11ad3fa6.pth`` -> ``resnet50-11ad3fa6.pth``)."""
    name = posixpath.basename(unquote(urlsplit(url).path))
    if not name or name in (".", ".."):
        from zoo import redact

        raise PullError(f"model {model!r}: cannot tell a file name from the URL {redact(url)}; "
                        "add files = [{ name = \"...\" }] to the card")
    return name


class UrlSource:
    """Any http(s) URL, downloaded and verified against the card's sha256 (or trusted on first
    use: the pull record keeps the hash seen at the first pull and later checks compare with it).

    A user and password in the URL (``https://USER:PASSWORD@host/w.pth``) are sent as HTTP Basic
    authentication and never shown: messages, ``zoo show`` and the pull record spell the URL
    through ``zoo.redact``."""

    name = "url"
    fields = {"url": Field(str, required=True, help="http(s) URL of the weights file")}

    def revision(self, card: ModelCard) -> str:
        """``sha256-<12 hex>`` when the card pins the file's hash, else ``url-<sha1(url)[:12]>``:
        a new URL or a new hash gets a new folder, never a stale file (the URL as shown: a folder
        name tells nothing of a password)."""
        from zoo import redact

        url = self.locator(card)
        first = card.files[0] if card.files else None
        if first is not None and first.sha256:
            return "sha256-" + first.sha256[:12]
        return "url-" + hashlib.sha1(redact(url).encode("utf-8")).hexdigest()[:12]

    def locator(self, card: ModelCard) -> str:
        """The card's URL, checked: a malformed one is refused before anything is written."""
        from zoo import check_url

        try:
            return check_url(str(card.source.get("url")))
        except PullError as exc:
            raise PullError(f"model {card.name!r}: {exc}") from None

    def fetch(self, card: ModelCard, cache: Cache) -> Fetched:
        url = self.locator(card)
        revision = self.revision(card)
        spec = card.files[0] if card.files else None
        name = spec.name if spec is not None else url_file_name(url, card.name)
        got = cache.download(url, cache.file_path(card.name, revision, name), name=name,
                             sha256=spec.sha256 if spec else None,
                             sha256_prefix=spec.sha256_prefix if spec else None,
                             size=spec.size if spec else None)
        return Fetched(model=card.name, source=self.name, locator=url, revision=revision,
                       root=cache.model_dir(card.name, revision), files=(got,))
