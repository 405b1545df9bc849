"""The run report: ``report/index.html``, one self-contained page per run, from the run folder alone.

- :func:`build` (``zoo report RUN``) writes the page from the run's files: ``config.json``,
  ``labels.json``, ``metrics.jsonl``, ``selection.json``, ``report/metrics.json``, ``cv/*.json``,
  ``contrastive.json``, ``prior.json``, ``skipped.json`` and ``report/predictions.jsonl``; for
  image runs it also rebuilds the run's model (``zoo.open_run(dir).load_model()``) for Grad-CAM;
- :func:`write_predictions` is what a task calls as it scores each held-out set, so the page can
  show the examples the model got wrong (:mod:`zoo.predictions` defines the file: it is a record of
  the run that tasks write below this package, and the page only reads it);
- a task adds its own sections with :func:`zoo.report.sections.register_task_sections`.

Importing this package is light: matplotlib, PIL, torch and pytorch-grad-cam load inside the
functions that draw.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build", "write_predictions", "read_predictions", "PAGE", "PREDICTIONS"]

from zoo.predictions import PREDICTIONS, read_predictions, write_predictions

PAGE = "report/index.html"


def build(run_dir: Any) -> Any:
    """Write ``report/index.html`` for the run in ``run_dir`` (from its files) and return its path."""
    from zoo.report.page import build as build_page

    return build_page(run_dir)
