"""zoo export and zoo predict when the machine is at fault: a full disk, a file size limit, a
read-only folder, a file where the folder should be, an onnxruntime that is installed but cannot
load. Each is one line naming the place and the fix; nothing partial is left at the output's path,
and a model already there stays as it was.

Real mechanisms only: ``RLIMIT_FSIZE`` (with SIGXFSZ ignored) makes writes fail with EFBIG; a
small tmpfs and a read-only bind mount in a user and mount namespace (``unshare -rm``, where the
kernel allows it) make them fail with ENOSPC and EROFS; a package directory ahead of
site-packages stands in for a broken onnxruntime.
"""

from __future__ import annotations

import resource
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FULL, run_zoo

from zoo.runtime import INSTALL_HINT

#: A small real network (6 MB of weights, random): big enough that its files fill small limits.
MODEL = "mobilenet_v3_small"
OLD = b"an earlier export, to be left alone"


def _zoo_command() -> list[str]:
    exe = Path(sys.executable).with_name("zoo")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo.cli"]


def _one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return done.returncode == 0


needs_namespaces = pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm (user and mount namespaces)")


# --------------------------------------------------------------------------- onnxruntime present but broken

@pytest.mark.parametrize("failure", [
    'raise ImportError("libcudart.so.12: cannot open shared object file: No such file or directory")',
    'raise OSError("libonnxruntime.so.1.32.0: cannot open shared object file")',
    "import a_dependency_that_is_not_installed",
], ids=["ImportError", "OSError", "missing-dependency"])
@pytest.mark.slow
def test_a_broken_onnxruntime_gets_the_install_hint(tmp_path, failure):
    fake = tmp_path / "site" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(failure + "\n", encoding="utf-8")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07" + bytes(64))  # never read: onnxruntime is needed first
    for args in (["export", MODEL, "--random-weights", "-o", str(tmp_path / "out.onnx")],
                 ["predict", str(model), "x.png"]):
        line = _one_line(run_zoo(*args, pythonpath=tmp_path / "site"))
        assert "onnxruntime is installed but onnxruntime cannot be imported" in line and INSTALL_HINT in line, line
    assert not (tmp_path / "out.onnx").exists()


# --------------------------------------------------------------------------- writes that fail

def _limited(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_a_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    """Below the fp32 graph's size, the first write that fails is the trace's (the int8 steps write
    less than that: the disk test below reaches them)."""
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    out.write_bytes(OLD)
    args = ["export", MODEL, "--random-weights", "-o", str(out)]
    done = subprocess.run([*_zoo_command(), *args], capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(1_000_000))
    line = _one_line(done)
    assert f"cannot write {out}: the file is larger than this process may write (file size limit)" in line, line
    assert "ulimit -f" in line and "choose another --out" in line
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.onnx"] and out.read_bytes() == OLD


@pytest.mark.slow
def test_a_file_where_the_folder_should_be_is_one_line(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    line = _one_line(run_zoo("export", MODEL, "--random-weights", "-o", str(blocker / "m.onnx")))
    assert f"cannot write {blocker}: a file stands where a folder must be" in line and "choose another --out" in line
    assert blocker.read_text(encoding="utf-8") == "a file, not a folder"


def _in_namespace(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@needs_namespaces
def test_a_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "m.onnx").write_bytes(OLD)
    command = shlex.join([*_zoo_command(), "export", MODEL, "--random-weights", "-o", str(folder / "m.onnx")])
    done = _in_namespace(f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && {command}")
    line = _one_line(done)
    assert f"cannot write {folder}: it is not writable (read-only or no permission)" in line, line
    assert "choose another --out" in line
    assert [p.name for p in folder.iterdir()] == ["m.onnx"] and (folder / "m.onnx").read_bytes() == OLD


@needs_namespaces
@pytest.mark.slow
def test_a_disk_that_fills_during_the_int8_export_is_one_line_and_leaves_nothing(tmp_path):
    """Small disks fill at each step in turn (tracing, the fp32 graph, onnxruntime's pre-processed,
    shape-inferred and int8 graphs); onnx's C++ writers cut a file short without a word, so the
    failure shows as a decode error unless zoo checks the disk."""
    folder = tmp_path / "disk"
    folder.mkdir()
    out = folder / "m.onnx"
    command = shlex.join([*_zoo_command(), "export", MODEL, "--random-weights", "-o", str(out), "--quantize", "int8"])
    steps = []
    # each size fills the disk at a later step of the export; the smallest and the third always, all
    # four with ZOO_TEST_FULL=1 (each is a whole export: about 6 s)
    sizes = ("2m", "8m", "12m", "16m") if FULL else ("2m", "12m")
    for size in sizes:
        steps.append(f"mount -t tmpfs -o size={size} tmpfs {folder} && printf '{OLD.decode()}' > {out} && "
                     f"echo '== {size}' && {command}; echo \"rc=$?\"; ls -A {folder}; cat {out}; echo; umount {folder}")
    done = _in_namespace(" ; ".join(steps))
    reports = done.stdout.split("== ")[1:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(reports) == len(sizes) and len(errors) == len(sizes), (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    for report, error in zip(reports, errors):
        assert f"cannot write {out}: the disk is full" in error and "free some space" in error, error
        lines = report.splitlines()
        assert lines[1] == "rc=1" and lines[2] == "m.onnx" and lines[3] == OLD.decode(), report
