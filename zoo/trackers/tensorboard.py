"""TensorBoard: event files under ``RUN/tensorboard``, written by PyTorch's ``SummaryWriter``
(which needs the ``tensorboard`` package: ``zoo[tensorboard]``).

Parameters as a text summary and as TensorBoard's hyper-parameters (the HParams tab, with the
final metrics), each epoch's measurements as scalars at step ``epoch``, the final metrics as
``final/...`` scalars, and the report as an artefact: its plots as images and the page's path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.trackers import epoch_numbers, final_metrics, flat_params

__all__ = ["TensorBoardTracker", "make"]


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = run_dir / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.params: dict[str, Any] = {}
        self.step = 0

    def start(self, params: dict[str, Any]) -> None:
        self.params = flat_params(params)
        self.writer.add_text("params", "```\n" + json.dumps(params, indent=1, ensure_ascii=False) + "\n```", 0)

    def epoch(self, row: dict[str, Any]) -> None:
        self.step = int(row.get("epoch", self.step + 1))
        for key, value in epoch_numbers(row).items():
            self.writer.add_scalar(key, value, self.step)

    def finish(self, metrics: dict[str, Any], report_dir: Path) -> None:
        import numpy as np
        from PIL import Image

        final = final_metrics(metrics)
        for key, value in final.items():
            self.writer.add_scalar(f"final/{key}", value, self.step)
        for plot in sorted(report_dir.glob("*.png")):
            with Image.open(plot) as image:
                self.writer.add_image(f"report/{plot.stem}", np.asarray(image.convert("RGB")), self.step,
                                      dataformats="HWC")
        page = report_dir / "index.html"
        lines = [metrics.get("baseline_line") or "", f"report: {page}" if page.is_file() else ""]
        self.writer.add_text("report", "\n\n".join(line for line in lines if line), self.step)
        hparams = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in self.params.items()}
        self.writer.add_hparams(hparams, {f"final/{k}": v for k, v in final.items()}, run_name="hparams")
        self.writer.close()


def make(run_dir: Path) -> TensorBoardTracker:
    return TensorBoardTracker(run_dir)
