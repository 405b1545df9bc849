"""What the zoo serve tests share: real exported models (built once per test session), a real
`zoo serve` in a subprocess with torch made unimportable, and a server in a thread of the test
process (real HTTP on 127.0.0.1 either way).

Models (each `zoo export` output, in ``<pytest basetemp>/serve-models/NAME/model.onnx``):

- ``digits``: a few-shot classifier on efficientnet_lite0 (digits 0, 1, 7), image;
- ``topics``: a zero-shot classifier on MiniLM (sport, cooking, finance), text;
- ``minilm``: MiniLM's embedding, text;
- ``tags``: ``topics`` with the metadata of a multi-label export (a threshold per label, written
  by the exporter's own ``write_metadata``): what a server reads of a multi-label model;
- ``sounds``: a few-shot classifier on efficientnet_lite0 through the log-mel front end, audio.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import isolated_zoo, write_digit_folder

__all__ = ["model_path", "ServerProcess", "thread_server", "digit_png", "wav_bytes", "TOPIC_TEXTS"]

TOPIC_TEXTS = ["The striker scored a late goal in the final", "Whisk the eggs and fold in the flour",
               "The central bank raised interest rates again"]
LABELS = ["sport", "cooking", "finance"]
QUIET = {"log": lambda _: None}


def _digits(target: Path, work: Path) -> None:
    import zoo

    classifier = zoo.fewshot("efficientnet_lite0", str(write_digit_folder(work / "digits", dark_ink=True)),
                             engine="torch")
    classifier.save(target)
    zoo.export(target, samples=2, **QUIET)


def _topics(target: Path, work: Path) -> None:
    import zoo

    zoo.zero_shot("all-minilm-l6-v2-offline", LABELS, engine="torch").save(target)
    zoo.export(target, samples=2, **QUIET)


def _minilm(target: Path, work: Path) -> None:
    import zoo

    zoo.export("all-minilm-l6-v2-offline", target / "model.onnx", samples=2, **QUIET)


def _tags(target: Path, work: Path) -> None:
    from zoo.onnxgraph.onnxfile import read_info, write_metadata

    source = model_path_in(target.parent, "topics")
    target.mkdir(parents=True, exist_ok=True)
    for file in source.parent.glob("model*"):
        shutil.copy(file, target / file.name)
    info = read_info(target / "model.onnx")
    write_metadata(target / "model.onnx",
                   dataclasses.replace(info, source={**info.source, "thresholds": [0.3, 0.3, 0.3]}))


def _sounds(target: Path, work: Path) -> None:
    import zoo
    from test_audio import write_sounds

    classifier = zoo.fewshot("efficientnet_lite0", str(write_sounds(work / "sounds", per_class=3)), engine="torch")
    classifier.save(target)
    zoo.export(target, samples=2, **QUIET)


_BUILDERS = {"digits": _digits, "topics": _topics, "minilm": _minilm, "tags": _tags, "sounds": _sounds}


def model_path_in(root: Path, name: str) -> Path:
    """``name``'s exported model under ``root``, built the first time it is asked for."""
    target = root / name
    model = target / "model.onnx"
    if not (target / ".done").exists():
        shutil.rmtree(target, ignore_errors=True)
        work = root / "work" / name
        work.mkdir(parents=True, exist_ok=True)
        with pytest.MonkeyPatch.context() as patch, isolated_zoo(patch, root / "home"):
            _BUILDERS[name](target, work)
        (target / ".done").touch()
    return model


def model_path(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """An exported model, shared by every test module of the session."""
    return model_path_in(tmp_path_factory.getbasetemp() / "serve-models", name)


def digit_png(index: int = 0, *, size: int = 32) -> bytes:
    """A PNG of one of scikit-learn's digits, dark ink on white (as the ``digits`` model saw)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    ink = (digits.images[index] * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(255 - ink).resize((size, size)).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(kind: str = "high", seconds: float = 0.6) -> bytes:
    import soundfile
    from test_audio import tone

    buffer = io.BytesIO()
    soundfile.write(buffer, tone(kind, seconds), 16000, format="WAV")
    return buffer.getvalue()


# --------------------------------------------------------------------------- servers

_NO_TORCH = """
import sys
HEAVY = ("torch", "torchvision", "transformers", "timm", "sentence_transformers")
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{name} must not be imported by zoo serve")
sys.meta_path.insert(0, NoTorch())
from zoo.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code or 0
print("HEAVY", sorted(m for m in sys.modules if m.split(".")[0] in HEAVY), flush=True)
sys.exit(code)
"""


class ServerProcess:
    """`zoo serve ARGS` in a subprocess in which torch cannot be imported; ``url`` once it listens."""

    def __init__(self, args: Sequence[str], *, timeout: float = 120) -> None:
        self.args = ["serve", *args, "--port", "0"]
        self.proc = subprocess.Popen([sys.executable, "-c", _NO_TORCH, *self.args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.time() + timeout
        self.url = ""
        while not self.url:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"zoo serve did not start in {timeout} s: {self.proc.stderr.read()}") from None
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match.group(1)
            elif line == "":
                raise AssertionError(f"zoo serve exited: {''.join(self.stdout)} {self.proc.stderr.read()}")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put("")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str, str]:
        """Send ``sig`` and wait: (exit code, stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        stderr = self.proc.stderr.read()
        time.sleep(0.1)  # the reader thread's last lines
        return self.proc.returncode, "".join(self.stdout), stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def thread_server(models: Sequence[str | Path], **settings: object) -> Iterator[object]:
    """``zoo.serve`` in a thread of this process (uvicorn, real sockets); yields the Running server."""
    import uvicorn

    from zoo.serve import ServeSettings, prepare

    running = prepare([str(m) for m in models], ServeSettings(port=0, **settings))
    server = uvicorn.Server(running.config())
    thread = threading.Thread(target=server.run, kwargs={"sockets": [running.sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and thread.is_alive() and time.time() < deadline:
        time.sleep(0.02)
    assert server.started, "the server thread did not start"
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(30)
        running.sock.close()
