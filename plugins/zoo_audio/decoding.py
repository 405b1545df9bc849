"""Reading a clip: decoding through libsndfile (soundfile), mono mixdown, resampling through soxr.

Policies, stated once here and in the README:

- decoding: ``soundfile`` (libsndfile, whose wheels carry it) reads WAV, FLAC and Ogg/Vorbis, at
  any bit depth, as float32 in [-1, 1];
- mono: several channels are averaged (a mixdown; no channel is picked);
- resampling: ``soxr`` (the SoX resampler, "HQ" quality) to the front end's sample rate, only when
  the file's rate differs; arrays given directly are taken to be mono at that rate already.

Nothing here imports torch: the torch-free runtime reads clips with it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import InputError

__all__ = ["AUDIO_SUFFIXES", "MIN_RATE", "MAX_RATE", "SILENCE", "read_clip", "clip_problem", "is_audio_file"]

AUDIO_SUFFIXES = (".flac", ".ogg", ".wav")
#: The sample rates a file may have: below 4 kHz no speech survives, above 192 kHz is no audio format in use.
MIN_RATE, MAX_RATE = 4000, 192000
#: A clip whose peak is below this (about -80 dBFS) is silence: its spectrogram would be noise alone.
SILENCE = 1e-4


def is_audio_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError:  # pragma: no cover - a dependency of zoo
        raise InputError("reading audio needs the soundfile package: pip install soundfile") from None
    return soundfile


def _decode(path: Path) -> tuple[Any, int]:
    """(float32 samples x channels, sample rate), or InputError naming the file and what to do."""
    soundfile = _soundfile()
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such audio file") from None
    except (RuntimeError, soundfile.LibsndfileError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable audio file ({exc}); check it, or convert it to WAV or FLAC "
                         f"(e.g. `ffmpeg -i {path.name} {path.stem}.flac`)") from None
    return samples, int(rate)


def _mono(samples: Any) -> Any:
    return samples.mean(axis=1, dtype="float32") if samples.shape[1] > 1 else samples[:, 0]


def _resampled(wave: Any, rate: int, target: int) -> Any:
    import numpy as np

    if rate == target:
        return np.ascontiguousarray(wave, dtype=np.float32)
    import soxr

    return soxr.resample(wave, rate, target, quality="HQ").astype(np.float32, copy=False)


def read_clip(item: Any, sample_rate: int) -> Any:
    """A mono float32 waveform at ``sample_rate`` from a file path, or from a 1-D array (already mono
    at that rate). Raises InputError for what :func:`clip_problem` reports."""
    import numpy as np

    if isinstance(item, (str, Path)):
        path = Path(item)
        reason = _header_problem(path)
        if reason is not None:
            raise InputError(f"{path}: {reason}")
        samples, rate = _decode(path)
        wave = _mono(samples)
        if not len(wave):
            raise InputError(f"{path}: zero-length clip (no samples); remove it")
        return _resampled(wave, rate, sample_rate)
    wave = np.asarray(item)
    reason = _array_problem(wave)
    if reason is not None:
        raise InputError(f"a clip given as an array: {reason}")
    return wave.astype(np.float32, copy=False)


def _array_problem(wave: Any) -> str | None:
    import numpy as np

    if wave.ndim != 1 or wave.dtype.kind != "f":
        return f"expected a 1-D float waveform (mono), got shape {tuple(wave.shape)} of {wave.dtype}"
    if not len(wave):
        return "zero-length clip (no samples)"
    if not np.isfinite(wave).all():
        return "the waveform holds NaN or infinite samples"
    if float(np.abs(wave).max()) < SILENCE:
        return "a clip of silence (peak below -80 dBFS); remove it"
    return None


def _header_problem(path: Path) -> str | None:
    """What the file's name and header say is wrong with it, without decoding the samples."""
    if not is_audio_file(path):
        return (f"unsupported audio format {path.suffix or '(no suffix)'!r}; zoo reads "
                f"{', '.join(AUDIO_SUFFIXES)}: convert it (e.g. `ffmpeg -i {path.name} {path.stem}.flac`)")
    try:
        if path.stat().st_size == 0:
            return "empty audio file (0 bytes); remove it"
    except FileNotFoundError:
        return "audio file not found"
    except OSError as exc:
        return f"cannot read the audio file ({exc.strerror or exc})"
    soundfile = _soundfile()
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError, ValueError) as exc:
        return f"not a readable audio file ({exc}); check it or convert it to WAV or FLAC"
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        return (f"sample rate {info.samplerate} Hz is out of range ({MIN_RATE}..{MAX_RATE} Hz); resample it "
                f"(e.g. `sox {path.name} -r 16000 out.wav`)")
    if info.frames == 0:
        return "zero-length clip (no samples); remove it"
    return None


def clip_problem(item: Any) -> str | None:
    """Why ``item`` is not a usable clip (decoded in full: a truncated file fails here, not in
    training), or None."""
    import numpy as np

    if not isinstance(item, (str, Path)):
        if not hasattr(item, "__array_interface__"):
            return f"expected an audio file path or a waveform array, got a {type(item).__name__}"
        return _array_problem(np.asarray(item))
    path = Path(item)
    reason = _header_problem(path)
    if reason is not None:
        return reason
    try:
        samples, _ = _decode(path)
    except InputError as exc:
        return str(exc).split(": ", 1)[-1]
    wave = _mono(samples)
    if not len(wave):
        return "zero-length clip (no samples); remove it"
    return _array_problem(wave)
