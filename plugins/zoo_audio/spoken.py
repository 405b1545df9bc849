"""``--data spoken-digits``: the words "zero".."nine" spoken by espeak-ng, an offline audio demo.

espeak-ng (the Debian package, which ``install.sh`` installs) synthesises each word in many
voices: an accent (``en-us``, ``en-gb-scotland``...) with a voice variant (``+m3``, ``+f2``...), at a
seeded speed and pitch. Training voices and test voices share neither accent nor variant, so the
test set measures what a new speaker would get, not how well the training voices were learnt.

Generated once into ``$ZOO_HOME/datasets/spoken-digits-v1`` (about 600 clips, a few seconds),
built in a temporary folder and renamed into place, with a manifest of every file's sha256 and
the espeak-ng version: a half-written or tampered folder is never used, and it is made again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from zoo import Dataset, Example, InputError

__all__ = ["SpokenDigitsFormat", "WORDS", "TRAIN_VOICES", "TEST_VOICES", "ensure_spoken_digits"]

NAME = "spoken-digits"
VERSION = 1
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
_TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "klatt")
_TEST_ACCENTS = ("en-029", "en-us-nyc")
_TEST_VARIANTS = ("m5", "m6", "m7", "f4", "klatt2")
TRAIN_VOICES = tuple(f"{a}+{v}" for a in _TRAIN_ACCENTS for v in _TRAIN_VARIANTS)  # 48 voices
TEST_VOICES = tuple(f"{a}+{v}" for a in _TEST_ACCENTS for v in _TEST_VARIANTS)  # 10 voices
#: Takes per test voice and word (each at its own speed and pitch).
_TEST_TAKES = 2


def _espeak() -> str:
    import shutil

    found = shutil.which("espeak-ng")
    if found is None:
        raise InputError("spoken-digits is synthesised by espeak-ng, which is not installed: run ./install.sh, "
                         "or `sudo apt-get install espeak-ng` (Debian/Ubuntu)")
    return found


def _version(program: str) -> str:
    import subprocess

    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def _plan() -> list[tuple[str, str, str, int, int]]:
    """(relative path, voice, word, speed, pitch) for every clip, drawn from a fixed seed."""
    import numpy as np

    rng = np.random.default_rng(20261201)
    plan = []
    for role, voices, takes in (("train", TRAIN_VOICES, 1), ("test", TEST_VOICES, _TEST_TAKES)):
        for voice in voices:
            for word in WORDS:
                for take in range(takes):
                    speed, pitch = int(rng.integers(120, 201)), int(rng.integers(25, 76))
                    name = f"{voice.replace('+', '_')}-{take}.wav"
                    plan.append((f"{role}/{word}/{name}", voice, word, speed, pitch))
    return plan


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _complete(folder: Path) -> bool:
    manifest = folder / "manifest.json"
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        files = recorded["files"]
        return recorded.get("version") == VERSION and len(files) == len(_plan()) and all(
            (folder / name).is_file() and (folder / name).stat().st_size == size for name, (size, _) in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_spoken_digits(root: Path | None = None) -> Path:
    """The generated folder (made now if missing or incomplete); InputError without espeak-ng."""
    import shutil
    import subprocess
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from zoo import Cache  # loaded when the data is, not with every plugin host (zoo list)

    cache = Cache()
    home = Path(root) if root is not None else cache.root / "datasets"
    folder = home / f"{NAME}-v{VERSION}"
    if _complete(folder):
        return folder
    program = _espeak()
    home.mkdir(parents=True, exist_ok=True)
    with cache.lock(home / f".{NAME}.lock"):
        if _complete(folder):  # another process made it while this one waited
            return folder
        scratch = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=home))
        try:
            plan = _plan()

            def speak(entry: tuple[str, str, str, int, int]) -> None:
                relative, voice, word, speed, pitch = entry
                target = scratch / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                done = subprocess.run([program, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(target),
                                       word], capture_output=True, text=True, check=False)
                if done.returncode != 0 or not target.is_file() or target.stat().st_size <= 44:
                    raise InputError(f"espeak-ng failed on voice {voice!r} ({done.stderr.strip() or 'no output'}); "
                                     f"reinstall espeak-ng (./install.sh)")

            with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
                list(pool.map(speak, plan))
            files = {rel: [(scratch / rel).stat().st_size, _sha256(scratch / rel)] for rel, *_ in plan}
            manifest = {"name": NAME, "version": VERSION, "espeak_ng": _version(program),
                        "train_voices": list(TRAIN_VOICES), "test_voices": list(TEST_VOICES),
                        "clips": [{"path": rel, "voice": v, "word": w, "speed": s, "pitch": p}
                                  for rel, v, w, s, p in plan], "files": files}
            (scratch / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(scratch, folder)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
    return folder


class SpokenDigitsFormat:
    """``spoken-digits``: 48 training voices x 10 words, and a test set of 10 voices never heard
    in training (2 takes each). ``--per-class N`` draws the N labelled clips from the training voices."""

    name = NAME

    def detect(self, path: str | Path) -> bool:
        return str(path) == NAME

    def load(self, path: str | Path, modality: str) -> Dataset:
        folder = ensure_spoken_digits()
        classes = tuple(sorted(WORDS))

        def part(role: str) -> Dataset:
            examples = []
            for label, word in enumerate(classes):
                for clip in sorted((folder / role / word).glob("*.wav")):
                    examples.append(Example(clip, label, f"{NAME}:{role}/{word}/{clip.name}"))
            return Dataset(f"{NAME} ({role}: {'unseen voices' if role == 'test' else 'training voices'})", "audio",
                           classes, tuple(examples))

        return Dataset(NAME, "audio", classes, part("train").examples, test=part("test"))
