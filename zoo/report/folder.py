"""What the page is built from: a run folder's files, read as they are (never the trainer).

``config.json``, ``labels.json``, ``metrics.jsonl``, ``selection.json``, ``report/metrics.json``,
``cv/*.json``, ``contrastive.json``, ``prior.json``, ``skipped.json`` and
``report/predictions.jsonl``. Optional files may be missing (a run of another recipe, or an
unfinished one); a file that is there but damaged is one line naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["RunFiles", "read_folder"]


def _read(folder: Path, name: str) -> Any:
    """An optional file of the run's record (None when missing; damaged: one line)."""
    from zoo.runs.record import read_run_json

    return read_run_json(folder, name, optional=True)


def _history(path: Path) -> tuple[dict[str, Any], ...]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                break  # a torn last line of a killed run
            if isinstance(row, dict):
                rows.append(row)
    return tuple(rows)


@dataclass(frozen=True)
class RunFiles:
    """A run folder's records, as plain data."""

    dir: Path
    record: dict[str, Any]  # config.json
    classes: tuple[str, ...]
    history: tuple[dict[str, Any], ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)  # report/metrics.json ({} before the run ends)
    selection: dict[str, Any] | None = None
    cv: dict[str, Any] = field(default_factory=dict)  # cv/NAME.json by NAME
    contrastive: dict[str, Any] | None = None
    prior: dict[str, Any] | None = None
    skipped: tuple[dict[str, Any], ...] = ()
    predictions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        """The run's resolved options (``config.json``'s ``config``)."""
        options = self.record.get("config")
        return options if isinstance(options, dict) else {}

    @property
    def task(self) -> str:
        """``classification``, ``multi-label``, or the task the run recorded (regression, dense tasks)."""
        if self.metrics.get("multi_label") or self.options.get("multi_label") == "yes":
            return "multi-label"
        task = self.record.get("task")
        return str((task.get("name") if isinstance(task, dict) else task) or "classification")

    @property
    def front_end(self) -> dict[str, Any] | None:
        declared = self.options.get("front_end") or self.record.get("front_end")
        return declared if isinstance(declared, dict) and "params" in declared else None

    @property
    def held_out(self) -> str | None:
        """The held-out set the page's examples come from: ``test``, else ``val``, else None."""
        for name in ("test", "val"):
            if self.predictions.get(name) or isinstance(self.metrics.get(name), dict):
                return name
        return None


def read_folder(run_dir: str | Path) -> RunFiles:
    """The records of the run in ``run_dir`` (a folder without ``config.json`` is no run)."""
    from zoo.predictions import read_predictions

    folder = Path(run_dir)
    record = _read(folder, "config.json")
    if record is None:
        raise ZooError(f"{folder}: not a zoo run folder (no config.json); give the folder `zoo finetune` wrote")
    labels = _read(folder, "labels.json")
    if not isinstance(record, dict) or not isinstance(labels, list):
        raise ZooError(f"{folder}: config.json or labels.json does not hold what zoo wrote there; restore them, or "
                       f"fine-tune again into a new folder")
    cv = {path.stem: _read(folder, f"cv/{path.name}") for path in sorted((folder / "cv").glob("*.json"))}
    skipped = _read(folder, "skipped.json") or []
    return RunFiles(dir=folder, record=record, classes=tuple(str(name) for name in labels),
                    history=_history(folder / "metrics.jsonl"), metrics=_read(folder, "report/metrics.json") or {},
                    selection=_read(folder, "selection.json"), cv=cv, contrastive=_read(folder, "contrastive.json"),
                    prior=_read(folder, "prior.json"), skipped=tuple(r for r in skipped if isinstance(r, dict)),
                    predictions=read_predictions(folder))
