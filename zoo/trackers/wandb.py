"""Weights & Biases: a run in the project ``WANDB_PROJECT`` (else ``zoo``), named after the run
folder, its files under ``WANDB_DIR`` (else the run folder); ``WANDB_MODE=offline`` keeps it on
disk for a later ``wandb sync``.

The run's config holds the parameters; each epoch's measurements are logged at step ``epoch``;
the final metrics go to the run's summary, and the ``report/`` folder is a ``report`` artifact.
A W&B that cannot start (no API key without a terminal) is one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.trackers import epoch_numbers, final_metrics

__all__ = ["WandbTracker", "make"]


class WandbTracker:
    name = "wandb"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.run: Any = None
        self.step = 0

    def start(self, params: dict[str, Any]) -> None:
        import wandb

        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "zoo", name=self.run_dir.name,
                                  config=params, dir=os.environ.get("WANDB_DIR") or str(self.run_dir))
        except Exception as exc:  # wandb's UsageError / CommError: no key, no network
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ZooError(f"--report-to wandb: W&B cannot start ({first[:300]}); run `wandb login`, or set "
                           f"WANDB_MODE=offline to keep the run on disk") from None

    def epoch(self, row: dict[str, Any]) -> None:
        self.step = int(row.get("epoch", self.step + 1))
        self.run.log(epoch_numbers(row), step=self.step)

    def finish(self, metrics: dict[str, Any], report_dir: Path) -> None:
        import wandb

        self.run.summary.update(final_metrics(metrics))
        if report_dir.is_dir():
            artifact = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]", "-", f"report-{self.run_dir.name}"), type="report")
            artifact.add_dir(str(report_dir))
            self.run.log_artifact(artifact)
        self.run.finish()


def make(run_dir: Path) -> WandbTracker:
    return WandbTracker(run_dir)
