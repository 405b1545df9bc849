"""The log-mel front end: a clip as a 3-channel spectrogram image at the backbone's input size.

Every step is a declared parameter (``DEFAULTS``), recorded by the run and written into the ONNX
metadata, and runs in numpy alone: training, the frozen pass and ``zoo predict`` compute the same
numbers with the same code (the reference test compares the power spectrogram with librosa's).

1. decode, mono mixdown, resample to ``sample_rate`` (:mod:`zoo_audio.decoding`);
2. trim leading and trailing quiet: frames more than ``trim_db`` below the loudest (0: no trim);
3. crop or pad to ``clip_seconds``, placed by ``align`` (``center`` or ``start``); in training the
   placement is random instead (a time shift);
4. power STFT: Hann window of ``window_ms``, hop ``hop_ms``, ``n_fft`` points, frames centred
   (zero padding, as librosa's ``center=True, pad_mode="constant"``);
5. ``n_mels`` triangular filters on the HTK mel scale from ``fmin`` to ``fmax`` (no area norm);
6. decibels relative to the clip's loudest bin, floored ``top_db`` below it, scaled to [0, 1]
   (so loudness and recording gain do not matter);
7. low frequencies at the bottom, resized (bilinear) to the input's height x width, the same
   picture in all 3 channels, then the backbone's own mean and std.

SpecAugment (in unfrozen phases, ``--augment light``): a random placement (step 3), then
``freq_masks`` bands of up to ``freq_mask`` of the mel bins and ``time_masks`` spans of up to
``time_mask`` of the frames set to the spectrogram's mean, drawn from the example's seed alone.

Why hand-written: the ONNX runtime path must not need torch (torchaudio's transforms) and librosa
pulls numba into every ``zoo predict``; the steps are the textbook ones, checked against librosa.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from zoo import InputError, InputSpec

from zoo_audio.decoding import AUDIO_SUFFIXES, clip_problem, read_clip

__all__ = ["LogMel", "DEFAULTS", "spectrogram", "mel_filters", "mel_power"]

#: Bumped whenever the same parameters give other numbers: it is a parameter, so feature caches
#: and exported models from before never mix with the new ones.
VERSION = 1

DEFAULTS: dict[str, Any] = {
    "sample_rate": 16000,
    "clip_seconds": 1.0,
    "align": "center",
    "trim_db": 40.0,
    "window_ms": 25.0,
    "hop_ms": 10.0,
    "n_fft": 1024,
    "n_mels": 96,
    "fmin": 20.0,
    "fmax": 8000.0,
    "top_db": 80.0,
    "channels": "repeat",
    "freq_masks": 2,
    "freq_mask": 0.15,
    "time_masks": 2,
    "time_mask": 0.15,
    "version": VERSION,
}
_CHOICES = {"align": ("center", "start"), "channels": ("repeat", "deltas")}
_AUGMENTATIONS = ("light", "none")


def _number(key: str, value: Any, *, whole: bool = False, low: float = 0.0, low_open: bool = True,
            high: float | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
        raise InputError(f"audio front end: {key} must be a {'whole number' if whole else 'number'}, got {value!r}")
    if (value <= low if low_open else value < low) or (high is not None and value > high):
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        raise InputError(f"audio front end: {key} must be {bound}{f' and at most {high:g}' if high else ''}, "
                         f"got {value!r}")
    return int(value) if whole else float(value)


def resolve(params: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter, the given ones checked (one line naming the key and the allowed values)."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise InputError(f"audio front end: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"the settings are {', '.join(k for k in DEFAULTS if k != 'version')}")
    p = {**DEFAULTS, **params}
    if p["version"] != VERSION:
        raise InputError(f"audio front end: version {p['version']!r} was recorded, this zoo computes version "
                         f"{VERSION}; export or fine-tune again with this zoo")
    for key, choices in _CHOICES.items():
        if p[key] not in choices:
            raise InputError(f"audio front end: {key} takes {', '.join(choices)}, got {p[key]!r}")
    p["sample_rate"] = _number("sample_rate", p["sample_rate"], whole=True, low=4000, low_open=False, high=192000)
    p["clip_seconds"] = _number("clip_seconds", p["clip_seconds"], high=600)
    p["trim_db"] = _number("trim_db", p["trim_db"], low_open=False, high=200)
    p["window_ms"] = _number("window_ms", p["window_ms"], high=1000)
    p["hop_ms"] = _number("hop_ms", p["hop_ms"], high=1000)
    p["n_fft"] = _number("n_fft", p["n_fft"], whole=True, low=16, low_open=False, high=65536)
    p["n_mels"] = _number("n_mels", p["n_mels"], whole=True, low=4, low_open=False, high=1024)
    p["fmin"] = _number("fmin", p["fmin"], low_open=False)
    p["fmax"] = _number("fmax", p["fmax"])
    p["top_db"] = _number("top_db", p["top_db"], high=200)
    for key in ("freq_masks", "time_masks"):
        p[key] = _number(key, p[key], whole=True, low_open=False, high=16)
    for key in ("freq_mask", "time_mask"):
        p[key] = _number(key, p[key], low_open=False, high=0.5)
    rate = p["sample_rate"]
    if p["fmax"] > rate / 2 or p["fmin"] >= p["fmax"]:
        raise InputError(f"audio front end: fmin {p['fmin']:g} and fmax {p['fmax']:g} Hz must satisfy "
                         f"0 <= fmin < fmax <= sample_rate / 2 = {rate / 2:g}")
    if _samples(p["window_ms"], rate) > p["n_fft"]:
        raise InputError(f"audio front end: a {p['window_ms']:g} ms window is {_samples(p['window_ms'], rate)} samples, "
                         f"more than n_fft {p['n_fft']}; raise n_fft or shorten the window")
    if _samples(p["hop_ms"], rate) < 1 or _samples(p["clip_seconds"] * 1000, rate) < p["n_fft"] // 2:
        raise InputError("audio front end: the clip is shorter than one analysis window; lengthen clip_seconds")
    empty = int((mel_filters(rate, p["n_fft"], p["n_mels"], p["fmin"], p["fmax"]).sum(axis=1) == 0).sum())
    if empty:
        raise InputError(f"audio front end: {empty} of the {p['n_mels']} mel filters fall between two FFT bins and "
                         f"would always be empty; lower n_mels, raise fmin or raise n_fft")
    return p


def _samples(ms: float, rate: int) -> int:
    return int(round(ms * rate / 1000.0))


# --------------------------------------------------------------------------- the signal

def _trimmed(wave: Any, p: Mapping[str, Any]) -> Any:
    """``wave`` without its leading and trailing quiet (frame RMS more than trim_db below the loudest)."""
    import numpy as np

    if not p["trim_db"]:
        return wave
    frame, hop = _samples(p["window_ms"], p["sample_rate"]), _samples(p["hop_ms"], p["sample_rate"])
    if len(wave) <= frame:
        return wave
    windows = np.lib.stride_tricks.sliding_window_view(wave, frame)[::hop]
    rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-10)) >= 20 * np.log10(max(rms.max(), 1e-10)) - p["trim_db"])
    start, stop = int(loud[0]) * hop, min(len(wave), int(loud[-1]) * hop + frame)
    return wave[start:stop]


def fitted(wave: Any, p: Mapping[str, Any], rng: Any = None) -> Any:
    """Exactly ``clip_seconds`` of ``wave``: cropped or zero-padded, placed by ``align`` (or at random)."""
    import numpy as np

    n = _samples(p["clip_seconds"] * 1000, p["sample_rate"])
    extra = len(wave) - n
    if extra == 0:
        return wave
    if rng is not None:
        offset = int(rng.integers(0, abs(extra) + 1))
    else:
        offset = abs(extra) // 2 if p["align"] == "center" else 0
    if extra > 0:
        return wave[offset:offset + n]
    out = np.zeros(n, dtype=np.float32)
    out[offset:offset + len(wave)] = wave
    return out


@functools.lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Any:
    """(n_mels, n_fft // 2 + 1) triangular filters, centres equally spaced on the HTK mel scale
    (``2595 log10(1 + f / 700)``), each rising from its left neighbour's centre to its own and
    falling to its right neighbour's; peak 1, no area normalisation."""
    import numpy as np

    def mel(f: Any) -> Any:
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    centres = 700.0 * (10.0 ** (np.linspace(mel(fmin), mel(fmax), n_mels + 2) / 2595.0) - 1.0)
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    left, middle, right = centres[:-2, None], centres[1:-1, None], centres[2:, None]
    rising = (bins[None, :] - left) / (middle - left)
    falling = (right - bins[None, :]) / (right - middle)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _window(window: int, n_fft: int) -> Any:
    import numpy as np

    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)).astype(np.float32)  # periodic Hann
    padded = np.zeros(n_fft, dtype=np.float32)
    start = (n_fft - window) // 2
    padded[start:start + window] = hann
    return padded


def mel_power(wave: Any, p: Mapping[str, Any]) -> Any:
    """The mel power spectrogram (n_mels, frames) of a fitted clip, float64."""
    import numpy as np

    n_fft, hop = p["n_fft"], _samples(p["hop_ms"], p["sample_rate"])
    padded = np.pad(wave.astype(np.float32), (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * _window(_samples(p["window_ms"], p["sample_rate"]), n_fft), axis=1)) ** 2
    return mel_filters(p["sample_rate"], n_fft, p["n_mels"], p["fmin"], p["fmax"]).astype(np.float64) @ power.T


def spectrogram(wave: Any, p: Mapping[str, Any]) -> Any:
    """(n_mels, frames) float32 in [0, 1]: decibels below the clip's loudest bin, floored at top_db,
    low frequencies last (at the bottom of the picture)."""
    import numpy as np

    db = 10.0 * np.log10(np.maximum(mel_power(wave, p), 1e-10))
    floor = db.max() - p["top_db"]
    return ((np.maximum(db, floor) - floor) / p["top_db"])[::-1].astype(np.float32)


@functools.lru_cache(maxsize=16)
def _linear(n_in: int, n_out: int) -> Any:
    """(n_out, n_in) bilinear resampling weights, pixel centres aligned (PIL's and torch's
    ``align_corners=False`` convention), edges clamped."""
    import numpy as np

    source = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    weights = np.zeros((n_out, n_in), dtype=np.float32)
    np.add.at(weights, (np.arange(n_out), low), 1 - (source - low))
    np.add.at(weights, (np.arange(n_out), high), source - low)
    return weights


def _planes(image: Any, channels: str) -> list[Any]:
    """The 3 channels: the spectrogram thrice (``repeat``), or with its first and second time
    differences (``deltas``, each centred on 0.5 and scaled by 2 so they span the same range)."""
    import numpy as np

    if channels == "repeat":
        return [image, image, image]
    first = np.gradient(image, axis=1)
    second = np.gradient(first, axis=1)
    return [image, np.clip(0.5 + 2 * first, 0, 1), np.clip(0.5 + 4 * second, 0, 1)]


def _masked(image: Any, p: Mapping[str, Any], rng: Any) -> Any:
    """SpecAugment's frequency and time masks, set to the spectrogram's mean."""
    image = image.copy()
    fill = float(image.mean())
    bins, frames = image.shape
    for count, fraction, axis, size in ((p["freq_masks"], p["freq_mask"], 0, bins),
                                        (p["time_masks"], p["time_mask"], 1, frames)):
        for _ in range(count):
            width = int(rng.integers(0, int(fraction * size) + 1))
            start = int(rng.integers(0, size - width + 1))
            if axis == 0:
                image[start:start + width, :] = fill
            else:
                image[:, start:start + width] = fill
    return image


# --------------------------------------------------------------------------- the front end

class LogMel:
    """The ``log-mel`` front end (``zoo.frontend``): audio into image backbones."""

    name = "log-mel"
    modality = "audio"
    target = "image"
    suffixes = AUDIO_SUFFIXES
    augmentations = _AUGMENTATIONS
    #: zoo finetune's choices when left out (zoo.train.config.LEARNING): pictures of sound are far
    #: from ImageNet's photographs, so every stage learns, faster than for photographs
    learning = {"unfreeze": "all", "backbone_lr": 1e-3, "unfreeze_epochs": 10}
    fields: dict[str, Any] = {}

    def resolve(self, params: Mapping[str, Any], spec: InputSpec) -> dict[str, Any]:
        return resolve(params)

    def problem(self, item: Any) -> str | None:
        return clip_problem(item)

    def image(self, item: Any, p: Mapping[str, Any], rng: Any = None) -> Any:
        """The [0, 1] spectrogram of one item before resizing; ``rng``: training's random placement."""
        return spectrogram(fitted(_trimmed(read_clip(item, p["sample_rate"]), p), p, rng), p)

    def array(self, item: Any, spec: InputSpec, *, augment: tuple[str, int] | None = None) -> Any:
        import numpy as np

        p = spec.front_end.options  # type: ignore[union-attr]
        rng = None
        if augment is not None:
            policy, seed = augment
            if policy not in _AUGMENTATIONS:
                raise InputError(f"audio takes --augment light (SpecAugment) or none, not {policy!r}")
            rng = np.random.default_rng([seed, 0x5bec]) if policy == "light" else None
        image = self.image(item, p, rng)
        if rng is not None:
            image = _masked(image, p, rng)
        height, width = spec.size or (224, 224)
        rows, columns = _linear(image.shape[0], height), _linear(image.shape[1], width).T
        planes = _planes(image, p["channels"])
        mean, std = spec.mean or (0.0, 0.0, 0.0), spec.std or (1.0, 1.0, 1.0)
        return np.stack([(rows @ plane @ columns - np.float32(m)) / np.float32(s)
                         for plane, m, s in zip(planes, mean, std)]).astype(np.float32)

    def generated(self, spec: InputSpec, count: int, seed: int) -> list[Any]:
        """Chirps in noise, one per item: sounds with structure in time and frequency."""
        import numpy as np

        p = spec.front_end.options  # type: ignore[union-attr]
        rate, rng = p["sample_rate"], np.random.default_rng(seed)
        t = np.arange(int(rate * p["clip_seconds"])) / rate
        items = []
        for _ in range(count):
            f0, f1 = rng.uniform(100, rate / 4, size=2)
            phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1]))
            wave = 0.5 * np.sin(phase) * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t))
            items.append(wave.astype(np.float32))
        return items

    def baseline(self, items: Sequence[Any], spec: InputSpec) -> tuple[str, Any]:
        """MFCCs of the same trimmed, fitted clips: 20 coefficients' mean and standard deviation
        over time, their deltas' mean absolute value, and 13 coefficients averaged over 8 equal
        time segments (the word's course in time, which a mean over the clip loses): 156 numbers."""
        import numpy as np

        p = spec.front_end.options  # type: ignore[union-attr]
        return ("MFCC (20 coefficients: mean, std, deltas, 8 time segments) + logistic regression",
                np.stack([mfcc_features(fitted(_trimmed(read_clip(item, p["sample_rate"]), p), p), p)
                          for item in items]))


def mfcc_features(wave: Any, p: Mapping[str, Any], coefficients: int = 20, segments: int = 8) -> Any:
    import numpy as np
    from scipy.fft import dct

    log_mel = 10.0 * np.log10(np.maximum(mel_power(wave, p), 1e-10))
    mfcc = dct(log_mel, type=2, axis=0, norm="ortho")[:coefficients]  # (coefficients, frames)
    deltas = np.diff(mfcc, axis=1)
    parts = np.array_split(np.arange(mfcc.shape[1]), segments)
    profile = np.stack([mfcc[:13, part].mean(axis=1) for part in parts], axis=1).ravel()
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1), np.abs(deltas).mean(axis=1), profile]).astype(np.float32)

