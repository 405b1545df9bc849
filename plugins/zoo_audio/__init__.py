"""zoo plugin: sound as pictures. Clips (class folders, ``path,label`` manifests, the offline
``spoken-digits`` demo) read by any image backbone through the ``log-mel`` front end.

Written exactly as a third-party plugin: it touches zoo only through its public API and hooks,
and imports nothing heavy at import time (soundfile, soxr and numpy load when a clip is read).
"""

from __future__ import annotations

from zoo import hookimpl

from zoo_audio.formats import AudioCsvFormat, AudioFolderFormat
from zoo_audio.logmel import LogMel
from zoo_audio.spoken import SpokenDigitsFormat


@hookimpl
def register_dataset_formats(register):
    register(AudioFolderFormat())
    register(AudioCsvFormat())
    register(SpokenDigitsFormat())


@hookimpl
def register_front_ends(register):
    register(LogMel())
