"""Which modality a file holds, by its suffix: what a query or an input to classify names.

The suffixes are asked of what reads each modality, never listed here: images are what zoo's image
folder format and the torch-free runtime read (:data:`zoo.data.formats.IMAGE_EXTENSIONS`,
:data:`zoo.runtime.IMAGE_SUFFIXES`); any other modality is what the registered front ends reading it
take (:func:`zoo.frontend.suffixes`), and for sounds also the suffixes the core knows as sounds
without a plugin (:data:`zoo.data.formats.SOUND_SUFFIXES`: an ``.mp3`` is a sound even where no
front end decodes it). Texts have no files of their own: a string is a text unless it names one.
"""

from __future__ import annotations

from pathlib import Path

from zoo.data.dataset import MODALITIES

__all__ = ["suffixes_of", "file_modality"]


def suffixes_of(modality: str) -> frozenset[str]:
    """The file suffixes (lower case, with the dot) that hold ``modality`` data."""
    from zoo.data.formats import IMAGE_EXTENSIONS, SOUND_SUFFIXES

    if modality == "image":
        from zoo.runtime import IMAGE_SUFFIXES

        return frozenset(IMAGE_EXTENSIONS) | frozenset(IMAGE_SUFFIXES)
    if modality == "text":
        return frozenset()
    from zoo.frontend import suffixes

    return frozenset(suffixes(modality)) | (SOUND_SUFFIXES if modality == "audio" else frozenset())


def file_modality(path: str | Path) -> str | None:
    """The modality a file of this name holds (``"image"``, ``"audio"``), or None for a name no
    reader claims (a text file, no suffix). By name only: the file need not exist."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return None
    return next((m for m in MODALITIES if suffix in suffixes_of(m)), None)
