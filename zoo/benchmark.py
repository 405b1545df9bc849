"""``zoo bench``: PyTorch eager vs onnxruntime fp32 vs onnxruntime int8, measured side by side.

One call exports the model (validated, as ``zoo export`` does) and quantizes it in a temporary
folder, then times the three on the same inputs and threads: latency at batch 1 (median and 90th
percentile) and throughput at a larger batch.

Measurements alternate between the backends in short blocks (a 0.1 s pause and one untimed call,
then a few timed ones), so a machine whose load changes during the run slows all three alike
instead of whichever ran last. Blocks and pauses rather than single calls: a runtime's worker
threads keep spinning for a while after a call returns (PyTorch's OpenMP pool, onnxruntime's
own) and steal a core from whichever backend runs next. Alternating every call measured that
contention instead of the backends: at 2 threads on a 2-core machine, resnet50 eager took 129 ms
per image alternating each call and 62 ms in blocks; the digits run's int8 model took 8.2 ms in
blocks without the pause and 3.0 ms with it (2.7 ms alone).
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["bench", "BenchResult", "BenchRow", "interleaved"]


@dataclass(frozen=True)
class BenchRow:
    """One backend's numbers."""

    backend: str
    latency_ms: float  # median at batch 1
    p90_ms: float
    throughput: float  # items per second at the large batch
    speedup: float = 1.0  # batch-1 latency of PyTorch / this
    throughput_ratio: float = 1.0  # this throughput / PyTorch's


@dataclass(frozen=True)
class BenchResult:
    """What :func:`bench` measured, and on what."""

    model: str
    batch: int
    threads: int
    runs: int
    rows: tuple[BenchRow, ...]
    machine: str
    int8: dict[str, Any] | None = None  # fp32 vs int8 evidence from the quantization step
    notes: tuple[str, ...] = field(default_factory=tuple)

    def row(self, backend: str) -> BenchRow:
        return next(r for r in self.rows if r.backend == backend)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": [asdict(r) for r in self.rows]}


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores"


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def bench(
    source: str | Path,
    *,
    batch: int = 16,
    runs: int = 30,
    throughput_runs: int = 5,
    warmup: int = 3,
    threads: int | None = None,
    pretrained: bool = True,
    int8: bool = True,
    log: Callable[[str], None] | None = None,
    registry_files: Sequence[str | Path] = (),
) -> BenchResult:
    """Time PyTorch eager, onnxruntime fp32 and onnxruntime int8 on a run or a registry model.

    ``threads`` (default: the logical cores) is given to PyTorch and to onnxruntime alike.
    ``pretrained=False`` builds the architecture with random weights (speed does not depend on
    the weights; the int8 accuracy does).
    """
    import numpy as np
    import torch

    from zoo.errors import ZooError
    from zoo.export.exporting import build_fp32, build_int8
    from zoo.export.prepare import prepare
    from zoo.runtime import open_model

    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    if batch < 1 or runs < 1 or throughput_runs < 1:
        raise ZooError("--batch, --runs and the throughput runs must be at least 1")
    threads = threads or os.cpu_count() or 1
    # a few hundred held-out examples are enough for the accuracy line of a speed benchmark
    prepared = prepare(source, pretrained=pretrained, samples=max(8, min(batch, 16)), calibration=64, evaluation=300,
                       registry_files=registry_files)
    work = Path(tempfile.mkdtemp(prefix=".zoo-bench."))
    try:
        fp32 = build_fp32(prepared, work / "fp32", "model.onnx", say=say)
        models = {"onnxruntime fp32": open_model(fp32.path, provider="cpu", threads=threads)}
        quantization = None
        if int8:
            built = build_int8(prepared, fp32, work / "int8", max_drop=None, say=say)
            quantization = built.info.quantization
            models["onnxruntime int8"] = open_model(built.path, provider="cpu", threads=threads)
        encode = models["onnxruntime fp32"].encode
        small = encode(prepared.samples[:1])
        large = encode([prepared.samples[i % len(prepared.samples)] for i in range(batch)])
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        module = prepared.module.eval()

        def eager(feeds: dict[str, Any]) -> Callable[[], Any]:
            tensors = [torch.from_numpy(feeds[n]) for n in prepared.input_names]

            def call() -> Any:
                with torch.inference_mode():
                    return module(*tensors)
            return call

        def ort(model: Any, feeds: dict[str, Any]) -> Callable[[], Any]:
            return lambda: model.run(feeds)

        calls = {"pytorch eager": (eager(small), eager(large))}
        calls.update({name: (ort(m, small), ort(m, large)) for name, m in models.items()})
        try:
            say(f"timing {', '.join(calls)}: batch 1 x {runs} rounds, batch {batch} x {throughput_runs}, "
                f"{threads} threads")
            latency = interleaved({k: v[0] for k, v in calls.items()}, runs, warmup)
            bulk = interleaved({k: v[1] for k, v in calls.items()}, throughput_runs, 1, block=2)
        finally:
            torch.set_num_threads(previous)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_latency = float(np.median(latency["pytorch eager"]))
    base_throughput = batch / float(np.median(bulk["pytorch eager"]))
    rows = []
    for name in calls:
        median = float(np.median(latency[name]))
        throughput = batch / float(np.median(bulk[name]))
        rows.append(BenchRow(name, median * 1000, _percentile(latency[name], 90) * 1000, throughput,
                             base_latency / median, throughput / base_throughput))
    notes = list(prepared.notes)
    if not pretrained:
        notes.append("random weights: speed is representative, int8 accuracy is not")
    return BenchResult(model=str(prepared.home or prepared.card.name), batch=batch, threads=threads,
                       runs=runs, rows=tuple(rows), machine=_machine(), int8=quantization, notes=tuple(notes))


#: Pause before each block: the previous backend's spinning worker threads go to sleep meanwhile.
SETTLE_SECONDS = 0.1


def interleaved(calls: dict[str, Callable[[], Any]], runs: int, warmup: int, block: int = 5) -> dict[str, list[float]]:
    """Seconds per call: ``runs`` timed calls of each backend, in blocks of up to ``block`` that
    alternate between backends, each block after a short pause and one untimed call (the previous
    backend's threads wind down meanwhile); ``warmup`` untimed calls of each backend first."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    while any(len(t) < runs for t in times.values()):
        for name, call in calls.items():
            time.sleep(SETTLE_SECONDS)
            call()
            for _ in range(min(block, runs - len(times[name]))):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return times
