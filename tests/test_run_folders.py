"""Damaged run folders, two processes on one folder, and changed data under --resume: one line each,
never a traceback, never a run silently trained on other data (issue 13, item 3)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import full_only, run_zoo, write_digit_folder

import zoo
from zoo.errors import ZooError

IMAGE_MODEL = "efficientnet_lite0"
QUICK = ["--val-split", "0.25", "--epochs", "3", "--quiet", "--workers", "0"]


@pytest.fixture(scope="module")
def finished(digit_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "run"
    result = run_zoo("finetune", IMAGE_MODEL, "--data", str(digit_folder), "--out", str(folder), *QUICK, timeout=300)
    assert result.returncode == 0, result.stderr
    return folder


def damaged_copy(finished: Path, tmp_path: Path, name: str, content: bytes | None) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    if content is None:
        (copy / name).unlink()
    else:
        (copy / name).write_bytes(content)
    return copy


@pytest.mark.parametrize("name, content, message", [
    ("labels.json", b'["digit-0", "dig', "labels.json: damaged (not valid JSON"),
    ("labels.json", None, "labels.json: missing, so the run folder is incomplete"),
    ("config.json", b'{"config": {"model": "efficien', "config.json: damaged (not valid JSON"),
    ("checkpoints/final.pt", b"PK\x03\x04 truncated", "final.pt: damaged"),
])
@pytest.mark.slow
def test_a_damaged_run_folder_is_one_line_in_export_and_resume(finished, tmp_path, name, content, message):
    copy = damaged_copy(finished, tmp_path, name, content)
    with pytest.raises(ZooError, match=re.escape(message)):
        zoo.export(copy, tmp_path / "m.onnx", log=lambda _: None)
    if name != "checkpoints/final.pt":  # a resume writes final.pt again
        lines: list[str] = []
        with pytest.raises(ZooError, match=re.escape(message)):
            zoo.finetune(resume=copy, progress=False, log=lines.append)
        assert not any(line.startswith("fine-tuning") for line in lines)  # refused before any work
    if name == "labels.json" and content is not None:  # and through the real CLI: one line, no traceback
        result = run_zoo("export", str(copy), "--out", str(tmp_path / "m.onnx"), timeout=300)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert message in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_resume_refuses_changed_data(digit_folder, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(digit_folder, data)
    folder = tmp_path / "run"
    zoo.finetune(IMAGE_MODEL, str(data), out=folder, val_split=0.25, head_epochs=3, workers=0, progress=False,
                 log=lambda _: None)
    victim = sorted((data / "digit-1").iterdir())[0]
    shutil.copy(sorted((data / "digit-7").iterdir())[0], victim)  # same names, other contents
    with pytest.raises(ZooError, match=r"cannot resume: the (training|validation) data changed since the run started"):
        zoo.finetune(resume=folder, progress=False, log=lambda _: None)
    shutil.rmtree(data / "digit-7")  # a class fewer
    with pytest.raises(ZooError, match="cannot resume: the data's classes changed"):
        zoo.finetune(resume=folder, progress=False, log=lambda _: None)


@pytest.mark.slow
def test_one_process_at_a_time_per_run_folder(finished, tmp_path):
    import filelock

    holder = subprocess.Popen([sys.executable, "-c", (
        "import filelock, sys, time; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
        "print('held', flush=True); time.sleep(60)"), str(finished / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ZooError, match="another `zoo finetune` is writing this run folder"):
            zoo.finetune(resume=finished, progress=False, log=lambda _: None)
    finally:
        holder.kill()
        holder.wait()
    assert filelock.FileLock(str(finished / ".lock")).acquire(timeout=5)  # released with the process


@pytest.mark.slow
def test_a_run_that_fails_before_it_starts_leaves_no_folder(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n")
    with pytest.raises(ZooError):
        zoo.finetune(IMAGE_MODEL, str(write_digit_folder(tmp_path / "d", dark_ink=True)), out=tmp_path / "run",
                     val="/nonexistent/val", progress=False, log=lambda _: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_run_refuses_weights_that_drifted_under_it(finished, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    config = json.loads((copy / "config.json").read_text())
    (name, recorded), = config["weights"]["sha256"].items()
    config["weights"]["sha256"][name] = "0" * 64  # as if the run had been trained on other bytes
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ZooError, match=f"file {name!r} of sha256 0{{64}}, but the cache now holds sha256 {recorded}"):
        zoo.open_run(copy).load_model()
    result = run_zoo("export", str(copy), "--out", str(tmp_path / "m.onnx"), timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr and "cache now holds" in result.stderr


@pytest.mark.slow
def test_a_card_from_registry_is_remembered_by_the_run(digit_folder, tmp_path):
    builtin = (Path(zoo.__file__).resolve().parent.parent / "registry.toml").read_text()
    block = re.search(r"(?ms)^\[models\.efficientnet_lite0\]\n(.*?)(?=^\[models\.)", builtin).group(1)
    extra = tmp_path / "mine.toml"
    extra.write_text("[models.my-lite]\n" + block)
    folder = tmp_path / "run"
    made = run_zoo("--registry", str(extra), "finetune", "my-lite", "--data", str(digit_folder), "--out", str(folder),
                   *QUICK, timeout=300)
    assert made.returncode == 0, made.stderr
    assert json.loads((folder / "config.json").read_text())["config"]["registry"] == [str(extra.resolve())]
    # later commands find the card without being told again
    run = zoo.open_run(folder)
    assert run.card().name == "my-lite" and run.load_model() is not None


# --------------------------------------------------------------------------- a run stopped by a signal

STOPPABLE = ["--val-split", "0.25", "--epochs", "2", "--unfreeze", "1", "--unfreeze-epochs", "4", "--no-augment",
             "--workers", "0", "--seed", "3"]


@pytest.mark.slow  # a run into its unfrozen epochs, stopped, then resumed: ~30 s
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=full_only)])
def test_a_signal_stops_a_run_in_one_line_and_resume_finishes_it(digit_folder, tmp_path, signum, code):
    from conftest import kill_when_written

    folder = tmp_path / "run"
    errors = tmp_path / "stderr.txt"
    # epoch 2 is the head's last (2 head epochs): the signal comes while the first unfrozen epoch
    # trains, so a resume starts a new phase (and the rest of the run leaves the signal time to land
    # on a busy machine)
    returncode = kill_when_written(["finetune", IMAGE_MODEL, "--data", str(digit_folder), *STOPPABLE, "--out",
                                    str(folder)], folder / "checkpoints" / "epoch-0002.pt", signum=signum, stderr=errors)
    assert not (folder / "checkpoints" / "final.pt").exists(), "the run finished before the signal"
    text = errors.read_text()
    assert returncode == code and "Traceback" not in text, text[-3000:]
    last = max(int(p.stem.split("-")[1]) for p in (folder / "checkpoints").glob("epoch-*.pt"))
    assert text.strip().splitlines()[-1] == (
        f"Error: zoo finetune stopped by {signal.Signals(signum).name}; the last complete checkpoint is epoch {last} "
        f"({folder}/checkpoints/epoch-{last:04d}.pt); resume with `zoo finetune --resume {folder}`")
    assert not list(folder.rglob("*.tmp"))  # no temp of a checkpoint cut short
    if signum == signal.SIGTERM:  # the resume the line gives finishes the run
        resumed = run_zoo("finetune", "--resume", str(folder), "--quiet", timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        assert (folder / "checkpoints" / "final.pt").is_file()
        epochs = [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > last


@pytest.mark.slow
def test_the_stop_line_says_where_a_run_stands(tmp_path):
    """Before the run began (no folder kept), before its first checkpoint, after epoch N; and the
    handler turns a real signal into that line with the shell's exit code, restoring the handlers."""
    import os

    from zoo.stopping import Interrupted, reporting_stops
    from zoo.train.folders import stopped_run

    folder = tmp_path / "my run"
    assert stopped_run("SIGINT", folder).endswith("before the run began; nothing was kept: run the same command again")
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert stopped_run("SIGTERM", folder) == (f"zoo finetune stopped by SIGTERM before its first checkpoint; resume "
                                              f"with `zoo finetune --resume '{folder}'` (its epochs start from the "
                                              f"beginning)")
    for epoch in (1, 2, 12):
        (folder / "checkpoints" / f"epoch-{epoch:04d}.pt").write_bytes(b"")
    assert "the last complete checkpoint is epoch 12 (" in stopped_run("SIGTERM", folder)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught:
        with reporting_stops(lambda name: stopped_run(name, folder)):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between two bytecodes
                pass
    assert caught.value.exit_code == 143 and "stopped by SIGTERM; the last complete checkpoint is epoch 12" in str(
        caught.value)
    assert signal.getsignal(signal.SIGTERM) is before
