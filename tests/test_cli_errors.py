"""User mistakes and missing pieces in the CLI: one line each, never a traceback (issue 13, item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import run_zoo

IMAGE = "efficientnet_lite0"
WITHOUT_ONNXRUNTIME = textwrap.dedent("""
    import sys
    sys.modules["onnxruntime"] = None  # as on a plain `pip install zoo`: importing it fails
    from zoo.cli import main
    main()
""")


def zoo_without_onnxruntime(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_ONNXRUNTIME, *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


@pytest.mark.parametrize("args", [["export", IMAGE, "--out", "m.onnx"], ["predict", "m.onnx", "x.png"]])
def test_export_and_predict_without_onnxruntime_say_how_to_install_it(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"not really")
    result = zoo_without_onnxruntime(*args)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "pip install 'zoo[cpu]' (or 'zoo[gpu]'" in result.stderr
    assert not (tmp_path / "m.onnx.tmp").exists()


@pytest.mark.parametrize("device, message", [
    ("cuda", "PyTorch sees no CUDA GPU here"),
    ("gpu", "not a device name; use cpu, cuda, cuda:N or mps"),
])
@pytest.mark.slow
def test_a_device_this_machine_lacks_is_one_line(digit_folder, tmp_path, device, message):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_zoo("finetune", IMAGE, "--data", str(digit_folder), "--device", device, "--out", str(tmp_path / "r"))
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert message in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_an_unwritable_export_destination_is_one_line(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    result = run_zoo("export", IMAGE, "--out", str(blocker / "model.onnx"), timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "a file stands where a folder must be" in result.stderr and str(blocker) in result.stderr
    assert "choose another --out" in result.stderr
