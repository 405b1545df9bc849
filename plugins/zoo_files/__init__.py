"""zoo plugin: weights from a URL (`url`), a local file or folder (`local`) or an installed Python
package (`package`).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from zoo import Field, hookimpl

from zoo_files.local import LocalSource
from zoo_files.package import PackageSource


class UrlSource:
    """Any http(s) URL, downloaded and verified against the card's sha256."""

    name = "url"
    fields = {"url": Field(str, required=True, help="http(s) URL of the weights file")}


@hookimpl
def register_sources(register):
    register(UrlSource())
    register(LocalSource())
    register(PackageSource())
