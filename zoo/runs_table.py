"""``zoo runs [FOLDER]``: the runs in a folder, one row each, read from their files alone.

A row says what a person compares runs by: the model, the data, the task, the metric the run
was judged by on its held-out data (test, else validation, else the cross-validated estimate)
beside the baseline's on the same data, how long it took, and its status:

- ``finished``: ``report/metrics.json`` and ``checkpoints/final.pt`` are written;
- ``running``: another process holds the run folder's lock (``zoo finetune`` is writing it);
- ``resumable``: it stopped (killed, a crash, a full disk) after saving work that
  ``zoo finetune --resume`` continues from: an epoch's checkpoint, cross-validation folds
  (``cv/``), the chosen cut (``selection.json``) or contrastive rounds;
- ``killed``: it stopped before saving any of that: a resume starts its epochs from the beginning.

The time is wall time from ``labels.json`` (written once, when the run starts) to the newest of
its result files (``final.pt``, ``report/metrics.json``, ``metrics.jsonl``): a resumed run's time
includes the pause. Stdlib only: listing runs imports no torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["RunRow", "list_runs", "run_row", "run_status", "run_seconds", "SORT_KEYS"]

#: ``--sort`` keys: the row field each sorts by (numbers descending, except time; text ascending).
SORT_KEYS = ("name", "model", "data", "task", "metric", "baseline", "seconds", "status", "started")
_STATUSES = ("finished", "running", "resumable", "killed")


@dataclass(frozen=True)
class RunRow:
    """One run folder, as the table shows it."""

    name: str
    path: str
    model: str | None
    data: str | None
    task: str
    metric_name: str | None
    metric: float | None
    on: str | None  # where the metric was measured: test, val or cv
    baseline: float | None
    seconds: float | None
    status: str  # finished, running, resumable, killed
    detail: str  # where it stopped and how to resume; "" when finished
    started: float | None  # POSIX time the run started

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _json(path: Path) -> Any:
    """A JSON file, or None when missing or unreadable (a table row never fails on one file)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _locked(folder: Path) -> bool:
    """Whether another process holds the run folder's lock (``zoo finetune`` writing it)."""
    import filelock

    lock_file = folder / ".lock"
    if not lock_file.is_file():
        return False
    lock = filelock.FileLock(str(lock_file))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return True
    except OSError:
        return False  # a read-only folder: nobody writes it
    lock.release()
    return False


def run_status(folder: str | Path) -> tuple[str, str]:
    """(status, detail) of a run folder; see the module's docstring."""
    folder = Path(folder)
    if (folder / "report" / "metrics.json").is_file() and (folder / "checkpoints" / "final.pt").is_file():
        return "finished", ""
    resume = f"zoo finetune --resume {folder}"
    if _locked(folder):
        return "running", "another process is writing it"
    epochs = sorted((folder / "checkpoints").glob("epoch-*.pt"))
    saved = [what for what, present in (
        (f"epoch {epochs[-1].stem.split('-')[-1].lstrip('0') or '0'}" if epochs else "", bool(epochs)),
        ("cross-validation folds", any((folder / "cv").glob("*.json"))),
        ("the chosen cut", (folder / "selection.json").is_file()),
        ("contrastive rounds", (folder / "checkpoints" / "contrastive.pt").is_file())) if present]
    if saved:
        return "resumable", f"saved: {', '.join(saved)}; `{resume}`"
    return "killed", f"stopped before its first checkpoint; `{resume}` starts its epochs again"


def run_seconds(folder: str | Path) -> tuple[float | None, float | None]:
    """(seconds the run took, when it started), from its files' times; (None, None) when unknown."""
    folder = Path(folder)
    try:
        started = (folder / "labels.json").stat().st_mtime
    except OSError:
        return None, None
    ends = []
    for name in ("checkpoints/final.pt", "report/metrics.json", "metrics.jsonl"):
        try:
            ends.append((folder / name).stat().st_mtime)
        except OSError:
            continue
    return (max(0.0, max(ends) - started) if ends else None), started


def _measured(metrics: dict[str, Any]) -> tuple[str | None, float | None, str | None, float | None]:
    """(metric name, transfer's value, the set it is on, the baseline's value on the same set)."""
    key = metrics.get("metric") or "accuracy"
    baseline = metrics.get("baseline") if isinstance(metrics.get("baseline"), dict) else {}
    for on in ("test", "val"):
        if isinstance(metrics.get(on), dict) and key in metrics[on]:
            base = baseline.get(on) if isinstance(baseline.get(on), dict) else {}
            return key, metrics[on][key], on, base.get(key)
    estimate = (metrics.get("cv") or {}).get("head") if isinstance(metrics.get("cv"), dict) else None
    if isinstance(estimate, dict) and key in estimate:
        base = baseline.get("cv") if isinstance(baseline.get("cv"), dict) else {}
        return key, estimate[key], "cv", base.get(key)
    return key if metrics else None, None, None, None


def run_row(folder: str | Path) -> RunRow:
    """The table's row for one run folder; a folder without ``config.json`` is no run (ZooError)."""
    folder = Path(folder)
    record = _json(folder / "config.json")
    if not isinstance(record, dict):
        raise ZooError(f"{folder}: not a zoo run folder (no readable config.json)")
    options = record.get("config") if isinstance(record.get("config"), dict) else {}
    metrics = _json(folder / "report" / "metrics.json")
    metrics = metrics if isinstance(metrics, dict) else {}
    name, value, on, base = _measured(metrics)
    multi = metrics.get("multi_label") or options.get("multi_label") == "yes"
    recorded = record.get("task")
    task = "multi-label" if multi else str((recorded.get("name") if isinstance(recorded, dict) else recorded)
                                           or "classification")
    status, detail = run_status(folder)
    seconds, started = run_seconds(folder)
    return RunRow(name=folder.name, path=str(folder), model=options.get("model"), data=options.get("data"), task=task,
                  metric_name=name, metric=value, on=on, baseline=base, seconds=seconds, status=status,
                  detail=detail, started=started)


def list_runs(folder: str | Path = "runs", sort: str = "started") -> list[RunRow]:
    """Every run folder directly inside ``folder`` (those with a ``config.json``), sorted by ``sort``
    (:data:`SORT_KEYS`): metric and baseline best first, time shortest first, names and status
    alphabetically, ``started`` newest first. Runs without the value sort last."""
    root = Path(folder)
    if not root.is_dir():
        raise ZooError(f"{root}: no such folder; give the folder that holds the run folders (zoo finetune "
                       f"writes them under runs/ by default)")
    if sort not in SORT_KEYS:
        raise ZooError(f"--sort {sort}: unknown; sort by one of {', '.join(SORT_KEYS)}")
    rows = [run_row(child) for child in sorted(root.iterdir()) if child.is_dir() and (child / "config.json").is_file()]
    field = {"metric": "metric", "baseline": "baseline", "seconds": "seconds", "started": "started"}.get(sort, sort)
    descending = sort in ("metric", "baseline", "started")
    present = [row for row in rows if getattr(row, field) is not None]
    missing = [row for row in rows if getattr(row, field) is None]
    if sort == "status":
        present.sort(key=lambda row: (_STATUSES.index(row.status), row.name))
    else:
        present.sort(key=lambda row: (getattr(row, field), row.name), reverse=descending)
    return present + missing
