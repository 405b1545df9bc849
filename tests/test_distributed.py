"""torch.distributed for real: `zoo finetune --nproc 2` and `zoo embed --nproc 2` run two gloo
processes on the CPU through torch's own elastic launcher, and must equal one process: the same
chosen epochs and final weights (within 1e-5), the same table (ids, vectors within 1e-6); a rank
killed with SIGKILL ends the run cleanly, and `--resume` under the launcher completes it to the
weights of the straight run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import full_only, run_zoo

import zoo
from zoo.embed import VectorStore, embed_dataset

MODEL = "efficientnet_lite0"
# a validation split, the head then one unfrozen stage; no dropout: its masks are drawn per
# process, so only without it can two processes be compared with one bit for bit (augmentation
# is seeded per example and stays on)
OPTIONS = {"validation": "split", "val_split": 0.25, "unfreeze": 1, "head_epochs": 4, "unfreeze_epochs": 3,
           "batch_size": 8, "dropout": 0.0, "seed": 0}
FLAGS = ["--validation", "split", "--val-split", "0.25", "--unfreeze", "1", "--epochs", "4", "--unfreeze-epochs", "3",
         "--batch-size", "8", "--dropout", "0", "--seed", "0", "-q"]


def two_processes(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_zoo(*args, "--nproc", "2", timeout=timeout)


def forget_features() -> None:
    """An empty feature cache, so the frozen pass runs (sharded) instead of being read."""
    shutil.rmtree(Path(os.environ["ZOO_HOME"]) / "features", ignore_errors=True)


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]


def assert_same_run(one: Path, two: Path, tolerance: float = 1e-5) -> None:
    a, b = rows(one), rows(two)
    assert [(r["epoch"], r["phase"], r["best"]) for r in a] == [(r["epoch"], r["phase"], r["best"]) for r in b]
    for x, y in zip(a, b):
        for key in ("train_loss", "val_loss", "train_metric", "val_metric"):
            assert abs(x[key] - y[key]) < tolerance, (x["epoch"], key, x[key], y[key])
    first = torch.load(one / "checkpoints" / "final.pt", weights_only=True)
    second = torch.load(two / "checkpoints" / "final.pt", weights_only=True)
    for part in ("head", "body"):
        assert first[part].keys() == second[part].keys()
        for key in first[part]:
            assert (first[part][key] - second[part][key]).abs().max() < tolerance, (part, key)


@contextmanager
def one_core():
    """This process on one core, as each of two ranks on two cores is (zoo gives a rank its share
    of the cores): the same threads, so the same order of every float sum. With two threads
    against one, Adam's first steps turn last-bit differences of near-zero gradients into 2e-5."""
    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {min(before)})
    torch.set_num_threads(1)  # two spinning threads on one core would crawl
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def straight(digit_folder, tmp_path_factory) -> Path:
    """The one-process run every distributed run is compared with."""
    out = tmp_path_factory.mktemp("one") / "run"
    with one_core():
        zoo.finetune(MODEL, str(digit_folder), out=out, progress=False, log=lambda text: None, **OPTIONS)
    return out


@full_only  # the ranks' equality is checked by the killed-rank run below, the sharded pass by the embed test
@pytest.mark.slow
def test_the_cross_validated_head_on_two_processes_equals_one(digit_folder, tmp_path):
    """Head only, the small-data recipe: the head's regularisation chosen on folds, on every rank."""
    # the card's cut (choosing one would probe every layer: the same code, a minute longer)
    options = ["--per-class", "6", "--seed", "1", "--cut", "global_pool.flatten", "--unfreeze", "0", "-q"]
    with one_core():
        zoo.finetune(MODEL, str(digit_folder), out=tmp_path / "one", progress=False, log=lambda text: None,
                     per_class=6, seed=1, cut="global_pool.flatten", unfreeze=0)
    result = two_processes("finetune", MODEL, "--data", str(digit_folder), "--out", str(tmp_path / "two"), *options)
    assert result.returncode == 0, result.stderr
    one = json.loads((tmp_path / "one" / "report" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "report" / "metrics.json").read_text())
    assert one["test"]["accuracy"] == two["test"]["accuracy"]
    a = torch.load(tmp_path / "one" / "checkpoints" / "final.pt", weights_only=True)["head"]
    b = torch.load(tmp_path / "two" / "checkpoints" / "final.pt", weights_only=True)["head"]
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)


def _rank_pid(out: Path, rank: int) -> int | None:
    """The pid of the launcher's worker ``rank`` for the run into ``out`` (from /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in command and f"RANK={rank}".encode() in environ and b"-m" in command:
            return int(proc.name)
    return None


@pytest.mark.slow
def test_a_killed_rank_ends_the_run_and_resume_under_the_launcher_completes_it(straight, digit_folder, tmp_path):
    out = tmp_path / "killed"
    exe = Path(sys.executable).with_name("zoo")
    launcher = subprocess.Popen([str(exe), "finetune", MODEL, "--data", str(digit_folder), "--out", str(out), *FLAGS,
                                 "--nproc", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    target = out / "checkpoints" / "epoch-0006.pt"  # the first unfrozen epoch has been saved
    deadline = time.time() + 240
    while time.time() < deadline and not target.exists() and launcher.poll() is None:
        time.sleep(0.05)
    pid = _rank_pid(out, 1)
    assert pid is not None and launcher.poll() is None, "the run ended before rank 1 could be killed"
    os.kill(pid, signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode == 1
    assert "rank 1 of 2 failed (signal 9); every rank was stopped" in stderr and "--resume" in stderr
    assert not (out / "checkpoints" / "final.pt").exists()

    resumed = two_processes("finetune", "--resume", str(out), "-q")
    assert resumed.returncode == 0, resumed.stderr
    # the stage-1 features come from the cache the killed run filled (rank 0 reads it and gives it
    # to rank 1): the same inputs, so every difference is the training's; the sharded frozen pass
    # itself is compared with one process's in the embed test
    assert_same_run(straight, out)
    assert resumed.stdout.count("best epoch") == 1  # rank 0 speaks for both
    assert any(r["phase"] == 1 for r in rows(out))
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["batch_size"] == 8  # the global batch; each rank took half of every one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed"]  # the other rank's scratch copy is gone


@pytest.mark.slow
def test_embed_on_two_processes_writes_the_table_one_process_writes(digit_folder, tmp_path):
    """The frozen pass sharded: each rank embeds half of the new items, rank 0 writes them. And
    the user sees none of torch's launcher warning (four lines saying it set OMP_NUM_THREADS=1
    when nothing had): zoo gives each rank its share of the cores before the launch."""
    forget_features()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-m", "zoo", "embed", MODEL, str(digit_folder), "--db",
                             str(tmp_path / "two"), "--json", "--nproc", "2"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "OMP_NUM_THREADS" not in result.stderr and "*****" not in result.stderr, result.stderr
    assert json.loads(result.stdout)["embedded"] == 24  # one report, rank 0's
    with one_core():
        embed_dataset(MODEL, digit_folder, db=tmp_path / "one", workers=0)
    one, two = VectorStore(tmp_path / "one").table(), VectorStore(tmp_path / "two").table()
    keys_one, keys_two = one.keys(), two.keys()
    assert sorted(keys_one["id"]) == sorted(keys_two["id"]) and len(keys_two["id"]) == len(set(keys_two["id"]))
    first, second = one.vectors_for(keys_one["content"]), two.vectors_for(keys_two["content"])
    difference = max(float(np.abs(first[c] - second[c]).max()) for c in first)
    assert difference < 1e-6, difference


@pytest.mark.slow  # ~20 s: two ranks into their unfrozen epochs
def test_a_signal_to_the_launcher_stops_every_rank_and_rank_0_says_where(digit_folder, tmp_path):
    """SIGTERM to `zoo finetune --nproc 2`: the launcher passes it on, rank 0 says in one line where
    the run stopped and how to resume, the launcher adds nothing (no notices, no traceback) and
    exits as the shell reports the signal; the other rank's scratch copy is gone."""
    from conftest import kill_when_written

    out = tmp_path / "run"
    errors = tmp_path / "stderr.txt"
    returncode = kill_when_written(["finetune", MODEL, "--data", str(digit_folder), "--val-split", "0.25", "--epochs",
                                    "2", "--unfreeze", "1", "--unfreeze-epochs", "4", "--no-augment", "--workers", "0",
                                    "--batch-size", "8", "--out", str(out), "--nproc", "2"],
                                   out / "checkpoints" / "epoch-0003.pt", signum=signal.SIGTERM, stderr=errors)
    assert not (out / "checkpoints" / "final.pt").exists(), "the run finished before the signal"
    text = errors.read_text()
    assert returncode == 143 and "Traceback" not in text and "closing signal" not in text, text[-3000:]
    last = max(int(p.stem.split("-")[1]) for p in (out / "checkpoints").glob("epoch-*.pt"))
    assert text.strip().splitlines()[-1] == (
        f"Error: zoo finetune stopped by SIGTERM; the last complete checkpoint is epoch {last} "
        f"({out}/checkpoints/epoch-{last:04d}.pt); resume with `zoo finetune --resume {out}`")
    assert text.count("stopped by SIGTERM") == 1  # rank 0 alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "stderr.txt"]
