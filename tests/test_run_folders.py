"""Damaged run folders, two processes on one folder, and changed data under --resume: one line each,
never a traceback, never a run silently trained on other data (issue 13, item 3)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_zoo, write_digit_folder

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


def test_a_run_that_fails_before_it_starts_leaves_no_folder(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n")
    with pytest.raises(ZooError):
        zoo.finetune(IMAGE_MODEL, str(write_digit_folder(tmp_path / "d", dark_ink=True)), out=tmp_path / "run",
                     val="/nonexistent/val", progress=False, log=lambda _: None)
    assert not (tmp_path / "run").exists()


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
