"""The frozen pass on a CUDA GPU: which engine is fastest, and the demo on cuda (issue 10).

For efficientnet_lite0 (its real offline weights) and resnet50 (random weights: speed only), on
the same batch of 64 images: PyTorch eager fp32, eager channels_last, autocast (bf16 where the
GPU supports it, else fp16) with channels_last, which is what ``engine="auto"`` runs on CUDA, and
onnxruntime-gpu's CUDA provider (``engine="onnxruntime"``) when it is installed. Prints images/s
and each engine's least cosine similarity to fp32 eager, then runs
``zoo finetune efficientnet_lite0 --data digits --per-class 10 --device cuda`` and prints its time,
test accuracy and the engine its features came from.

    python bench/frozen_forward_cuda.py [--batch 64] [--runs 20]

Exits with a message (status 0) on a machine without a CUDA GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import zoo
from zoo.data import open_dataset
from zoo.frozen.compiled import open_session
from zoo.frozen.graph import frozen_graph
from zoo.onnxgraph.onnxfile import trace
from zoo.onnxgraph.static_dims import fold_static_dims


def _cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def _timed(call, runs: int) -> float:  # noqa: ANN001
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(runs):
        call()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / runs


def engines(model: str, pretrained: bool, batch_size: int, runs: int, folder: Path) -> None:
    import onnx

    backbone = zoo.load(model, pretrained=pretrained).eval()
    items = [e.item for e in open_dataset("digits", modality="image").examples[:batch_size]]
    batch = backbone.preprocess(items)
    graph = frozen_graph(backbone)
    with torch.no_grad():
        reference = graph(batch)[0].numpy()
    graph = graph.cuda()
    x = batch.cuda()
    x_last = x.contiguous(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    results: dict[str, tuple[float, float]] = {}

    def measure(name: str, call) -> None:  # noqa: ANN001
        with torch.no_grad():
            seconds = _timed(call, runs)
            out = call()
        results[name] = (batch_size / seconds, _cosine_min(reference, out[0].float().cpu().numpy()))

    measure("eager fp32", lambda: graph(x))
    last = graph.to(memory_format=torch.channels_last)
    measure("eager channels_last", lambda: last(x_last))

    def autocast():  # noqa: ANN202
        with torch.autocast("cuda", dtype=dtype):
            return last(x_last)

    measure(f"autocast {str(dtype).replace('torch.', '')} + channels_last (auto)", autocast)
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        path = folder / f"{model.replace('/', '--')}.onnx"
        trace(frozen_graph(backbone.cpu()).eval(), {"pixel_values": batch.numpy()}, ("pixel_values",),
              ("embedding",), path, modality="image")
        model_proto = onnx.load(str(path))
        fold_static_dims(model_proto)
        onnx.save_model(model_proto, str(path))
        session = open_session(path, threads=1, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        feeds = {"pixel_values": batch.numpy()}
        seconds = _timed(lambda: session.run(None, feeds), runs)
        results["onnxruntime CUDA provider"] = (batch_size / seconds, _cosine_min(reference, session.run(None, feeds)[0]))
    else:
        print("  (onnxruntime-gpu is not installed: no CUDA provider to compare; pip install 'zoo[gpu]')")
    print(f"\n{model} ({'pretrained' if pretrained else 'random weights'}), batch {batch_size}, "
          f"{torch.cuda.get_device_name()}:")
    base = results["eager fp32"][0]
    for name, (rate, cosine) in results.items():
        print(f"  {name:45s} {rate:9.0f} images/s ({rate / base:4.1f}x)  cosine to fp32 >= {cosine:.5f}")


def demo() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "ZOO_HOME": home}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "zoo.cli", "finetune", "efficientnet_lite0", "--data", "digits",
                               "--per-class", "10", "--device", "cuda", "--out", f"{home}/run", "--json", "-q"],
                              env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"the demo failed on cuda:\n{done.stderr[-3000:]}")
        test = json.loads(done.stdout)["test"]["accuracy"]
        engine = json.loads(Path(f"{home}/run/config.json").read_text())["frozen_pass"]["test"]
    print(f"\nzoo finetune efficientnet_lite0 --data digits --per-class 10 --device cuda: {seconds:.1f} s, "
          f"test accuracy {test:.4f}; features: {engine['engine']} on {engine['device']}"
          + (f", autocast {engine['autocast']}" if "autocast" in engine else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing to measure (run this where one is)")
        return
    with tempfile.TemporaryDirectory() as folder:
        engines("efficientnet_lite0", True, args.batch, args.runs, Path(folder))
        engines("resnet50", False, args.batch, args.runs, Path(folder))
    demo()


if __name__ == "__main__":
    main()
