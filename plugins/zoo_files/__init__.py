"""zoo plugin: weights from a URL (`url`), a local file or folder (`local`) or an installed Python
package (`package`).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from zoo import Field, hookimpl


class UrlSource:
    """Any http(s) URL, downloaded and verified against the card's sha256."""

    name = "url"
    fields = {"url": Field(str, required=True, help="http(s) URL of the weights file")}


class LocalSource:
    """A file or folder on disk; relative paths resolve against the registry file that declares them."""

    name = "local"
    fields = {"path": Field(str, required=True, help="file or folder, relative to the registry file")}


class PackageSource:
    """A file or folder inside an installed Python package (how the offline entries resolve)."""

    name = "package"
    fields = {
        "distribution": Field(str, required=True, help="the name to `pip install`"),
        "package": Field(str, required=True, help="the import name of the package"),
        "resource": Field(str, required=True, help="path of the file or folder inside the package"),
    }


@hookimpl
def register_sources(register):
    register(UrlSource())
    register(LocalSource())
    register(PackageSource())
