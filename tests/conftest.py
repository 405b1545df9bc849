"""Shared fixtures: every test gets its own ZOO_HOME, a fresh plugin host and an empty registry cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from zoo import catalog, plugins

REPO = Path(__file__).resolve().parent.parent

#: The test files that took longest under `-n 2 --dist loadfile` (`--durations=0` on the project's
#: 2-core machine), longest first. pytest-xdist hands whole files to the workers in the order of the
#: collection, and by default it sorts them by their number of tests, which starts these (few,
#: long tests) last, so one worker ran the last of them alone while the other had nothing left.
#: Started first, the many quick files fill the end and both workers finish together (longest
#: processing time first). Only the order changes; a file not named here keeps its place after them.
LONGEST_FIRST = ("test_distributed.py", "test_export.py", "test_wiseft.py", "test_frozen.py", "test_crossfit.py",
                 "test_regression.py", "test_report_page.py", "test_run_folders.py", "test_audio.py",
                 "test_finetune.py", "test_probe.py", "test_embed_storage.py", "test_export_faults.py",
                 "test_clip.py", "test_embed.py", "test_fewshot.py", "test_segmentation.py", "test_multilabel.py",
                 "test_contrastive.py", "test_instances.py", "test_serve.py", "test_predict.py")


def pytest_configure(config):
    """Under pytest-xdist: the files in :data:`LONGEST_FIRST` order (the controller), and each
    worker process on its own share of the cores (each worker).

    zoo sizes its threads by the cores its process may run on (zoo.threads.available_cores, the
    affinity mask); two workers that each see both cores put four busy compute threads on two,
    and OpenMP's spin-waiting then costs more than it computes (the whole suite: 19 min 53 s
    against 13 min 44 s pinned, on 2 cores). Pinning each worker (and the zoo subprocesses it
    starts, which inherit the mask) to its share keeps one thread per core. ZOO_TEST_PIN=0
    leaves the mask alone."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # keep pytest_collection_modifyitems' order
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if (os.environ.get("ZOO_TEST_PIN", "1") == "0" or not worker.startswith("gw") or not count.isdigit()
            or not hasattr(os, "sched_setaffinity")):
        return
    cores, workers, index = sorted(os.sched_getaffinity(0)), int(count), int(worker[2:])
    if workers < 2 or len(cores) < workers:
        return
    os.sched_setaffinity(0, set(cores[index::workers]))


def pytest_collection_modifyitems(config, items):
    """The files of :data:`LONGEST_FIRST` first (a stable sort: every file's tests stay together
    and in their order)."""
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


_ZOO_ENV = ("ZOO_HOME", "ZOO_REGISTRY", "ZOO_DISABLE_PLUGINS", "ZOO_TRACE_PLUGINS", "ZOO_OFFLINE")


@contextmanager
def isolated_zoo(patch: pytest.MonkeyPatch, home: Path):
    """A fresh ZOO_HOME, no user registry or plugin switches, a fresh plugin host and registry cache."""
    for name in _ZOO_ENV:
        patch.delenv(name, raising=False)
    patch.setenv("ZOO_HOME", str(home))
    previous = plugins.reset_host(None)
    catalog.clear_cache()
    try:
        yield home
    finally:
        plugins.reset_host(previous)
        catalog.clear_cache()


@pytest.fixture(autouse=True)
def zoo_env(tmp_path_factory, monkeypatch):
    """Isolate each test from the user's cache, registry files and plugin state."""
    with isolated_zoo(monkeypatch, tmp_path_factory.mktemp("zoo_home")) as home:
        yield home


TOPICS = {
    "sport": ["The striker scored twice in the final minutes", "The team won the championship match",
              "She ran the marathon in record time", "The coach praised the goalkeeper",
              "Fans cheered as the tennis final began", "The cyclist won the mountain stage"],
    "cooking": ["Simmer the tomato sauce for twenty minutes", "Whisk the eggs with sugar and butter",
                "Bake the bread until the crust is golden", "Chop the onions and fry them in oil",
                "Season the soup with salt and pepper", "Knead the dough and let it rise"],
    "finance": ["The central bank raised interest rates", "Shares fell after the earnings report",
                "Investors moved money into government bonds", "The company announced a stock buyback",
                "Inflation slowed for the third month", "The currency weakened against the dollar"],
}


def write_text_csv(path: Path, rows: Iterable[tuple[str, str]]) -> Path:
    """A real `text,label` CSV of ``rows``."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def write_topics_csv(path: Path) -> Path:
    """Three topics of six short texts each, as a real `text,label` CSV."""
    return write_text_csv(path, ((text, label) for label, texts in TOPICS.items() for text in texts))


def write_digit_folder(root: Path, *, dark_ink: bool) -> Path:
    """Digits 0, 1 and 7 of scikit-learn (8 each) as real 32x32 PNG files: root/digit-N/<n>.png."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in (0, 1, 7):
        folder = root / f"digit-{label}"
        folder.mkdir(parents=True)
        for n, index in enumerate(np.flatnonzero(digits.target == label)[:8]):
            ink = (digits.images[index] * 255 / 16).astype(np.uint8)
            Image.fromarray(255 - ink if dark_ink else ink).resize((32, 32)).convert("RGB").save(folder / f"{n}.png")
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def make_distribution(site: Path, dist: str, module: str, source: str, *,
                      entry_name: str | None = None, version: str = "1.0") -> Path:
    """A real installed distribution on a sys.path folder: its module, METADATA and entry point."""
    write(site / f"{module}.py", source)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    write(info / "entry_points.txt", f"[zoo]\n{entry_name or module} = {module}\n")
    (info / "RECORD").write_text("", encoding="utf-8")
    return site


#: A script's first lines that make every import of torch (and of the libraries built on it) fail:
#: what a test runs before a code path that must never import them (the runtime, zoo predict).
NO_TORCH = """import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "transformers", "timm"):
            raise ImportError("torch is not installed here")
sys.meta_path.insert(0, NoTorch())
"""


#: The longest checks whose ground other tests also cover (a second kill-and-resume of the same
#: loop, a second probe of the same backbones...): left out unless ZOO_TEST_FULL=1, which keeps
#: the suite under 15 minutes on 2 cores.
FULL = os.environ.get("ZOO_TEST_FULL") == "1"
full_only = pytest.mark.skipif(not FULL,
                               reason="set ZOO_TEST_FULL=1 for the longest checks")


def run_zoo(*args: str, env: dict[str, str] | None = None, pythonpath: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real `zoo` console script in a subprocess."""
    full_env = {k: v for k, v in os.environ.items()}
    full_env.update(env or {})
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), full_env.get("PYTHONPATH")]))
    exe = Path(sys.executable).with_name("zoo")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


MINIMAL_CARD = """
    description = "A tiny test network"
    modality = "image"
    task = "image-classification"
    license = "MIT"
    params = 1000
    source = { type = "url", url = "http://127.0.0.1:1/tiny.pt" }
    adapter = { type = "torchvision", arch = "resnet18" }
    input = { size = [32, 32], mean = [0.5, 0.5, 0.5], std = [0.5, 0.5, 0.5] }
    embedding = { node = "flatten", dim = 8 }
    head = "fc"
    stages = ["conv1", "layer1"]
"""


def card_toml(name: str, body: str = MINIMAL_CARD, extra: str = "") -> str:
    """A registry file with one model table."""
    quoted = name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
    return f"[models.{quoted}]\n" + textwrap.dedent(body).strip() + "\n" + textwrap.dedent(extra).strip() + "\n"


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory) -> Path:
    """Digits 0, 1 and 7 (8 each, light ink) for fine-tuning tests; a module may define its own."""
    return write_digit_folder(tmp_path_factory.mktemp("digits"), dark_ink=False)


@pytest.fixture(scope="module")
def text_csv(tmp_path_factory) -> Path:
    """Three topics of six short texts each, as a CSV."""
    return write_topics_csv(tmp_path_factory.mktemp("text") / "topics.csv")


def kill_when_written(args: Sequence[str], target: Path | Callable[[], bool], timeout: float = 300,
                      poll: float = 0.05, signum: int | None = None, stderr: Path | None = None) -> int:
    """Run the `zoo` console script with ``args`` and SIGKILL it (or send it ``signum``) as soon as
    ``target`` exists (or, for a callable, returns true), or let it end first; for the kill -9
    tests. ``stderr``: a file that receives what it printed there. Returns its exit code."""
    import signal
    import time

    written = target if callable(target) else target.exists
    exe = Path(sys.executable).with_name("zoo")
    with open(stderr or os.devnull, "wb") as errors:
        # SIGINT as a shell leaves it (pytest-xdist's workers ignore it, and children inherit that)
        process = subprocess.Popen([str(exe), *args], env=dict(os.environ), stdout=subprocess.DEVNULL,
                                   stderr=errors, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + timeout
        while time.time() < deadline and not written() and process.poll() is None:
            time.sleep(poll)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL if signum is None else signum)
        return process.wait(timeout=timeout)


def killed_and_resumed(args: Sequence[str], folder: Path, written: str, timeout: float = 900) -> tuple[Path, Path]:
    """The exact-resume check's two runs of ``zoo *args``: one straight to its end in
    ``folder/straight``, one in ``folder/killed`` killed with SIGKILL as soon as ``written`` (a path
    inside its run folder) exists, then ``zoo finetune --resume``; returns both run folders.
    ``timeout``: the straight and the resumed run's limit each."""
    straight, killed = folder / "straight", folder / "killed"
    done = run_zoo(*args, "--out", str(straight), timeout=timeout)
    assert done.returncode == 0, done.stderr
    kill_when_written([*args, "--out", str(killed)], killed / written)  # its own wait for the file, as before
    assert not (killed / "checkpoints" / "final.pt").exists(), "the run finished before it could be killed"
    resumed = run_zoo("finetune", "--resume", str(killed), "--quiet", timeout=timeout)
    assert resumed.returncode == 0, resumed.stderr
    return straight, killed


def _final(run: Path) -> dict:
    import torch

    return torch.load(run / "checkpoints" / "final.pt", weights_only=True)


def assert_same_final_weights(a: Path, b: Path) -> None:
    """Two run folders' final.pt: the same best epoch, the same head and body (the body holds the
    unfrozen stages when the best epoch is an unfrozen one) to float rounding."""
    import torch

    first, second = _final(a), _final(b)
    assert first["head"] and first.get("best") == second.get("best")
    for part in ("head", "body"):
        assert first[part].keys() == second[part].keys()
        for key in first[part]:
            torch.testing.assert_close(first[part][key], second[part][key], atol=1e-5, rtol=1e-4)


def assert_weights_within(a: Path, b: Path, fraction: float) -> None:
    """Two run folders' final.pt, their floating weights taken as one vector: apart by at most
    ``fraction`` of its length. For runs that are the same training but not to the last bit (DDP
    with losses normalised per process); a tiny bias alone is too small to judge."""
    import torch

    first, second = _final(a), _final(b)
    assert first.keys() == second.keys() and all(first[p].keys() == second[p].keys() for p in ("head", "body"))
    pairs = [(first[p][k], second[p][k]) for p in ("head", "body") for k in first[p] if first[p][k].is_floating_point()]
    ours, theirs = torch.cat([x.flatten() for x, _ in pairs]), torch.cat([y.flatten() for _, y in pairs])
    assert torch.linalg.vector_norm(ours - theirs) <= fraction * torch.linalg.vector_norm(ours)
