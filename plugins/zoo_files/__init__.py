"""zoo plugin: weights from a URL (`url`), a local file or folder (`local`) or an installed Python
package (`package`).

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks.
"""

from __future__ import annotations

from zoo import hookimpl

from zoo_files.local import LocalSource
from zoo_files.package import PackageSource
from zoo_files.url import UrlSource


@hookimpl
def register_sources(register):
    register(UrlSource())
    register(LocalSource())
    register(PackageSource())
